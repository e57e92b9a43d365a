package cycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/connector/postgres"
	"github.com/chainsync/chainsync/internal/connector/sqlite"
	"github.com/chainsync/chainsync/internal/engine"
)

// enginePolicy translates a SyncPolicy into the engine's terms.
func enginePolicy(p *syncv1alpha1.SyncPolicy) engine.Policy {
	ep := engine.Policy{
		Name:      p.Name,
		Source:    engine.Endpoint{Name: p.Spec.Source.Name},
		Target:    engine.Endpoint{Name: p.Spec.Target.Name},
		Direction: engine.Direction(p.Spec.Direction),
		Conflict:  engine.ConflictRule(p.Spec.ConflictResolution),
		DryRun:    p.Spec.DryRun,
		Deletes:   engine.Deletes{Propagate: p.Spec.Deletes.Propagate},
	}
	if ep.Direction == "" {
		ep.Direction = engine.OneWay
	}
	if ep.Conflict == "" {
		ep.Conflict = engine.SourceWins
	}
	if n := p.Spec.Deletes.MaxCount; n != nil {
		ep.Deletes.MaxCount = int(*n)
	}
	if n := p.Spec.Deletes.MaxPercent; n != nil {
		ep.Deletes.MaxPercent = float64(*n)
	}
	if n := p.Spec.Deletes.MinCount; n != nil {
		ep.Deletes.MinCount = int(*n)
	}
	for _, e := range p.Spec.Entities {
		// The connectors make each item's ID from its collection's keyFields, so the engine keys
		// by ID; its own KeyFields would force every cycle to be a Complete one.
		ent := engine.Entity{Name: e.Name, MatchOn: e.MatchOn}
		for _, f := range e.Fields {
			ent.Fields = append(ent.Fields, engine.FieldMapping{Source: f.Source, Target: f.Target})
		}
		ep.Entities = append(ep.Entities, ent)
	}
	return ep
}

// secretValues holds the Secret keys a policy names, read once per cycle process.
type secretValues map[string]map[string][]byte

func (s secretValues) get(ref syncv1alpha1.SecretKeyReference) (string, error) {
	v, ok := s[ref.Name][ref.Key]
	if !ok {
		return "", fmt.Errorf("Secret %q has no key %q", ref.Name, ref.Key)
	}
	return string(v), nil
}

// endpoints opens the policy's two connectors. Paths on claims are resolved under the volumes
// root the cycle pod mounts them at; fsRoot prefixes it where the pod's filesystem is emulated.
type endpoints struct {
	policy  *syncv1alpha1.SyncPolicy
	secrets secretValues
	fsRoot  string
	volumes string
	// onRejectedRow, by side, receives a csv export's rows that are no one's.
	onRejectedRow map[string]func(entity string, row csv.RejectedRow)
}

func (e endpoints) open(ctx context.Context, side string) (connector.Connector, error) {
	ep := e.policy.Spec.Source
	if side == "target" {
		ep = e.policy.Spec.Target
	}
	colls := collectionsOf(e.policy, side)
	switch {
	case ep.CSV != nil:
		return csv.New(csv.Config{
			Side: side, Directory: e.path(ep.CSV.Directory), Delimiter: ep.CSV.Delimiter, Comment: ep.CSV.Comment,
			Encoding: ep.CSV.Encoding, Entities: colls, MissingFileIsEmpty: side == "target",
			OnRejectedRow: e.onRejectedRow[side],
		})
	case ep.SQLite != nil:
		return sqlite.New(ctx, sqlite.Config{Side: side, File: e.path(ep.SQLite.File), Entities: colls})
	case ep.Postgres != nil:
		pg := ep.Postgres
		user, err := e.secrets.get(syncv1alpha1.SecretKeyReference{Name: pg.CredentialsSecretRef.Name, Key: pg.CredentialsSecretRef.UsernameKey})
		if err != nil {
			return nil, fmt.Errorf("%s.postgres.credentialsSecretRef: %w", side, err)
		}
		password, err := e.secrets.get(syncv1alpha1.SecretKeyReference{Name: pg.CredentialsSecretRef.Name, Key: pg.CredentialsSecretRef.PasswordKey})
		if err != nil {
			return nil, fmt.Errorf("%s.postgres.credentialsSecretRef: %w", side, err)
		}
		var ca string
		if pg.CASecretRef != nil {
			if ca, err = e.secrets.get(*pg.CASecretRef); err != nil {
				return nil, fmt.Errorf("%s.postgres.caSecretRef: %w", side, err)
			}
		}
		return postgres.New(ctx, postgres.Config{
			Side: side, Host: pg.Host, Port: int(pg.Port), Database: pg.Database, Schema: pg.Schema,
			User: user, Password: password, SSLMode: string(pg.SSLMode), CAPEM: ca, Entities: colls,
		})
	}
	return nil, fmt.Errorf("%s: no connector block for %q", side, ep.Connector)
}

// collectionsOf translates one side's collections of the policy's entities, by entity name.
func collectionsOf(policy *syncv1alpha1.SyncPolicy, side string) map[string]collection.Collection {
	colls := map[string]collection.Collection{}
	for _, ent := range policy.Spec.Entities {
		c := ent.Source
		if side == "target" {
			c = ent.Target
		}
		coll := collection.Collection{Name: c.Collection, KeyFields: c.KeyFields, ModifiedField: c.ModifiedField, Where: c.Where}
		for _, m := range c.Scope {
			coll.Scope = append(coll.Scope, collection.ScopeMatch{Field: m.Field, Identity: m.Identity})
		}
		colls[ent.Name] = coll
	}
	return colls
}

// ValidateSpec checks what of a policy can be checked without its volumes, Secrets and servers
// — delimiters, encodings, collection names, key and scope fields, where clauses — with the
// same rules a cycle applies, so the operator refuses such a policy before any cycle runs. The
// error names the field at fault.
func ValidateSpec(policy *syncv1alpha1.SyncPolicy) error {
	var errs []error
	for _, side := range []string{"source", "target"} {
		ep := policy.Spec.Source
		if side == "target" {
			ep = policy.Spec.Target
		}
		colls := collectionsOf(policy, side)
		switch {
		case ep.CSV != nil:
			errs = append(errs, csv.Config{Side: side, Directory: ep.CSV.Directory.Path, Delimiter: ep.CSV.Delimiter,
				Comment: ep.CSV.Comment, Encoding: ep.CSV.Encoding, Entities: colls}.ValidateSpec())
		case ep.SQLite != nil:
			errs = append(errs, sqlite.Config{Side: side, File: ep.SQLite.File.Path, Entities: colls}.ValidateSpec())
		case ep.Postgres != nil:
			pg := ep.Postgres
			errs = append(errs, postgres.Config{Side: side, Host: pg.Host, Port: int(pg.Port), Database: pg.Database,
				Schema: pg.Schema, SSLMode: string(pg.SSLMode), Entities: colls}.ValidateSpec())
		}
	}
	return errors.Join(errs...)
}

// path resolves a file on a claim, under the directory where the pod mounts that claim.
func (e endpoints) path(vp syncv1alpha1.VolumePath) string {
	return filepath.Join(e.fsRoot, e.volumes, e.policy.ClaimOf(vp), filepath.FromSlash(vp.Path))
}
