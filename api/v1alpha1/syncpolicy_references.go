package v1alpha1

import (
	"net"
	"slices"
	"strconv"
	"strings"
)

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

// SecretUse is one Secret key an endpoint reads, and where the endpoint sends what it reads.
// +kubebuilder:object:generate=false
type SecretUse struct {
	SecretKeyReference
	// Field names the reference in the spec, for messages: "source.postgres.credentialsSecretRef".
	Field string
	// Destination is where the endpoint connects: "host:port".
	Destination string
}

// SecretUses lists every Secret key the policy's endpoints read, with where each is sent.
func (p *SyncPolicy) SecretUses() []SecretUse {
	var uses []SecretUse
	for _, side := range []struct {
		name string
		ep   Endpoint
	}{{"source", p.Spec.Source}, {"target", p.Spec.Target}} {
		if pg := side.ep.Postgres; pg != nil {
			dest := pg.Destination()
			c := pg.CredentialsSecretRef
			field := side.name + ".postgres.credentialsSecretRef"
			uses = append(uses,
				SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, field, dest},
				SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, field, dest})
			if pg.CASecretRef != nil {
				uses = append(uses, SecretUse{*pg.CASecretRef, side.name + ".postgres.caSecretRef", dest})
			}
		}
		if l := side.ep.LDAP; l != nil {
			dest := l.Destination()
			if c := l.BindSecretRef; c != nil {
				field := side.name + ".ldap.bindSecretRef"
				uses = append(uses,
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, field, dest},
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, field, dest})
			}
			if l.CASecretRef != nil {
				uses = append(uses, SecretUse{*l.CASecretRef, side.name + ".ldap.caSecretRef", dest})
			}
		}
		if sc := side.ep.SCIM; sc != nil {
			// Sent in every request's Authorization header: the destination is the base URL.
			if ref := sc.BearerTokenSecretRef; ref != nil {
				uses = append(uses, SecretUse{*ref, side.name + ".scim.bearerTokenSecretRef", sc.BaseURL})
			}
			if c := sc.BasicAuthSecretRef; c != nil {
				field := side.name + ".scim.basicAuthSecretRef"
				uses = append(uses,
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, field, sc.BaseURL},
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, field, sc.BaseURL})
			}
		}
		if h := side.ep.HTTP; h != nil {
			uses = append(uses, h.secretUses(side.name+".http")...)
		}
		for _, dav := range []struct {
			block string
			ep    *DAVEndpoint
		}{{"carddav", side.ep.CardDAV}, {"caldav", side.ep.CalDAV}} {
			block, d := dav.block, dav.ep
			if d == nil {
				continue
			}
			// Sent in every request's Authorization header: the destination is the server's URL.
			if ref := d.BearerTokenSecretRef; ref != nil {
				uses = append(uses, SecretUse{*ref, side.name + "." + block + ".bearerTokenSecretRef", d.URL})
			}
			if c := d.BasicAuthSecretRef; c != nil {
				field := side.name + "." + block + ".basicAuthSecretRef"
				uses = append(uses,
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, field, d.URL},
					SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, field, d.URL})
			}
		}
	}
	return uses
}

// SecretKeys lists every Secret key the policy's endpoints read.
func (p *SyncPolicy) SecretKeys() []SecretKeyReference {
	var refs []SecretKeyReference
	for _, u := range p.SecretUses() {
		refs = append(refs, u.SecretKeyReference)
	}
	return refs
}

// Destination is where the endpoint connects, "host:port", in lower case.
func (pg *PostgresEndpoint) Destination() string {
	port := pg.Port
	if port == 0 {
		port = 5432
	}
	return strings.ToLower(pg.Host) + ":" + strconv.Itoa(int(port))
}

// Destination is where the directory is reached, "host:port", in lower case: the port given, or
// 389 for ldap:// and 636 for ldaps://.
func (l *LDAPEndpoint) Destination() string {
	rest, secure := strings.CutPrefix(l.URL, "ldaps://")
	if !secure {
		rest = strings.TrimPrefix(l.URL, "ldap://")
	}
	hostport := strings.ToLower(strings.TrimSuffix(rest, "/"))
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	if secure {
		return net.JoinHostPort(hostport, "636")
	}
	return net.JoinHostPort(hostport, "389")
}
