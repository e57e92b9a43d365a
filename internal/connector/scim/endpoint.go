package scim

import (
	"context"
	"fmt"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes scim connectors from a SyncPolicy endpoint's scim block.
var Kind = kindFor(func(spec endpoint.Spec) *Endpoint {
	b := spec.Endpoint.SCIM
	if b == nil {
		return nil
	}
	return &Endpoint{BaseURL: b.BaseURL, BearerTokenSecretRef: b.BearerTokenSecretRef, BasicAuthSecretRef: b.BasicAuthSecretRef,
		Deletes: DeleteMode(b.Deletes), Origin: OriginMode(b.Origin)}
})

// Endpoint is a scim block in the connector's terms.
type Endpoint struct {
	BaseURL              string
	BearerTokenSecretRef *syncv1alpha1.SecretKeyReference
	BasicAuthSecretRef   *syncv1alpha1.CredentialsSecretReference
	Deletes              DeleteMode
	Origin               OriginMode
}

// kindFor makes scim connectors from the scim block that block finds in a SyncPolicy endpoint.
func kindFor(block func(endpoint.Spec) *Endpoint) endpoint.Kind[Config] {
	return endpoint.Kind[Config]{
		Decode: func(spec endpoint.Spec) (Config, error) {
			b := block(spec)
			if b == nil {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s.scim: must be set for connector scim", spec.Side))
			}
			if (b.BearerTokenSecretRef == nil) == (b.BasicAuthSecretRef == nil) {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s.scim: set exactly one of bearerTokenSecretRef and basicAuthSecretRef", spec.Side))
			}
			return Config{Side: spec.Side, BaseURL: b.BaseURL, Deletes: b.Deletes, Origin: b.Origin, Entities: spec.Entities}, nil
		},
		Connect: func(ctx context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
			b := block(spec)
			var err error
			if ref := b.BearerTokenSecretRef; ref != nil {
				cfg.BearerToken, err = endpoint.Secret(env, cfg.field("bearerTokenSecretRef"), *ref)
			} else {
				cfg.Username, cfg.Password, err = endpoint.Credentials(env, cfg.field("basicAuthSecretRef"), *b.BasicAuthSecretRef)
			}
			if err != nil {
				return nil, err
			}
			return New(ctx, cfg)
		},
	}
}
