// Package endpoint is what a connector is given to make itself from its block of a SyncPolicy
// endpoint: the block, which side it is, the entities' collections, and where the cycle pod
// finds files and Secrets. Each connector package decodes its own block (csv.Kind, ...); the
// registry maps connector names to them.
package endpoint

import (
	"context"
	"fmt"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// Spec is one endpoint of a policy, as a connector reads it.
type Spec struct {
	// Side is "source" or "target": how the policy names the endpoint, so errors name the field
	// at fault (target.csv.delimiter).
	Side     string
	Endpoint syncv1alpha1.Endpoint
	// Entities are this side's collections, by entity name.
	Entities map[string]collection.Collection
}

// Env is where a cycle pod finds what an endpoint names.
type Env interface {
	// Path resolves a file or directory on a claim as the pod mounts it.
	Path(syncv1alpha1.VolumePath) string
	// Secret returns the value of a key of a Secret the policy names (mounted in the pod, never
	// read from the API).
	Secret(syncv1alpha1.SecretKeyReference) (string, error)
}

// Config is what a connector decodes its block into: it checks itself without volumes, Secrets
// or servers.
type Config interface{ ValidateSpec() error }

// Kind makes the connectors of one type. Decode reads the block into the connector's Config;
// Connect resolves what the block names through env (a path on a claim, a Secret) and opens
// the connector.
type Kind[C Config] struct {
	Decode  func(Spec) (C, error)
	Connect func(ctx context.Context, cfg C, spec Spec, env Env) (connector.Connector, error)
}

// ValidateSpec checks the block with the rules Open applies.
func (k Kind[C]) ValidateSpec(spec Spec) error {
	cfg, err := k.Decode(spec)
	if err != nil {
		return err
	}
	return cfg.ValidateSpec()
}

// Open makes the connector for one cycle of one user.
func (k Kind[C]) Open(ctx context.Context, spec Spec, env Env) (connector.Connector, error) {
	cfg, err := k.Decode(spec)
	if err != nil {
		return nil, err
	}
	return k.Connect(ctx, cfg, spec, env)
}

// Secret reads a key of a Secret a block names at field (its path in the policy, for the error).
func Secret(env Env, field string, ref syncv1alpha1.SecretKeyReference) (string, error) {
	v, err := env.Secret(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return v, nil
}

// Credentials reads the username and password of a Secret a block names at field.
func Credentials(env Env, field string, ref syncv1alpha1.CredentialsSecretReference) (user, password string, err error) {
	if user, err = Secret(env, field, syncv1alpha1.SecretKeyReference{Name: ref.Name, Key: ref.UsernameKey}); err != nil {
		return "", "", err
	}
	password, err = Secret(env, field, syncv1alpha1.SecretKeyReference{Name: ref.Name, Key: ref.PasswordKey})
	return user, password, err
}
