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
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/connector/registry"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/jobargs"
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
	return registry.Open(ctx, endpointSpec(e.policy, side), e)
}

// endpointSpec is one side of the policy as its connector reads it.
func endpointSpec(policy *syncv1alpha1.SyncPolicy, side string) endpoint.Spec {
	ep := policy.Spec.Source
	if side == "target" {
		ep = policy.Spec.Target
	}
	return endpoint.Spec{Side: side, Endpoint: ep, Entities: collectionsOf(policy, side)}
}

// Secret implements endpoint.Env from the Secrets mounted in the pod.
func (e endpoints) Secret(ref syncv1alpha1.SecretKeyReference) (string, error) {
	return e.secrets.get(ref)
}

// OnRejectedRow implements csv.RejectedRowsEnv: the export's rows that are no one's go to the
// Job's report.
func (e endpoints) OnRejectedRow(side string) func(entity string, row csv.RejectedRow) {
	return e.onRejectedRow[side]
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
	return errors.Join(registry.ValidateSpec(endpointSpec(policy, "source")), registry.ValidateSpec(endpointSpec(policy, "target")))
}

// Path implements endpoint.Env: a file on a claim, under the directory where the pod mounts that
// claim.
func (e endpoints) Path(vp syncv1alpha1.VolumePath) string {
	return filepath.Join(e.fsRoot, filepath.FromSlash(jobargs.ClaimPath(e.volumes, e.policy.ClaimOf(vp), vp.Path)))
}
