package v1alpha1

import "slices"

// ClaimOf is the PersistentVolumeClaim a path lives on: its own claimName, or the record store's.
func (p *SyncPolicy) ClaimOf(vp VolumePath) string {
	if vp.ClaimName != "" {
		return vp.ClaimName
	}
	return p.Spec.Store.ClaimName
}

// Claims lists, sorted and once each, the PersistentVolumeClaims the policy's cycles mount: the
// record store's and those of file-based endpoints.
func (p *SyncPolicy) Claims() []string {
	claims := []string{p.Spec.Store.ClaimName}
	for _, ep := range []Endpoint{p.Spec.Source, p.Spec.Target} {
		switch {
		case ep.CSV != nil:
			claims = append(claims, p.ClaimOf(ep.CSV.Directory))
		case ep.SQLite != nil:
			claims = append(claims, p.ClaimOf(ep.SQLite.File))
		}
	}
	slices.Sort(claims)
	return slices.Compact(claims)
}

// SecretKeys lists every Secret key the policy's endpoints read.
func (p *SyncPolicy) SecretKeys() []SecretKeyReference {
	var refs []SecretKeyReference
	for _, ep := range []Endpoint{p.Spec.Source, p.Spec.Target} {
		if pg := ep.Postgres; pg != nil {
			c := pg.CredentialsSecretRef
			refs = append(refs, SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, SecretKeyReference{Name: c.Name, Key: c.PasswordKey})
			if pg.CASecretRef != nil {
				refs = append(refs, *pg.CASecretRef)
			}
		}
	}
	return refs
}
