package dav

import (
	"context"
	"fmt"
	"time"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// CardDAVKind makes carddav connectors from a SyncPolicy endpoint's carddav block.
var CardDAVKind = kindFor(CardDAV, func(spec endpoint.Spec) *syncv1alpha1.DAVEndpoint { return spec.Endpoint.CardDAV })

// CalDAVKind makes caldav connectors from a SyncPolicy endpoint's caldav block.
var CalDAVKind = kindFor(CalDAV, func(spec endpoint.Spec) *syncv1alpha1.DAVEndpoint { return spec.Endpoint.CalDAV })

// kindFor makes the connectors of one protocol from the block that block finds in an endpoint.
func kindFor(p Protocol, block func(endpoint.Spec) *syncv1alpha1.DAVEndpoint) endpoint.Kind[Config] {
	return endpoint.Kind[Config]{
		Decode: func(spec endpoint.Spec) (Config, error) {
			b := block(spec)
			if b == nil {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s.%s: must be set for connector %s", spec.Side, p, p))
			}
			if (b.BearerTokenSecretRef == nil) == (b.BasicAuthSecretRef == nil) {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s.%s: set exactly one of bearerTokenSecretRef and basicAuthSecretRef", spec.Side, p))
			}
			cfg := Config{Protocol: p, Side: spec.Side, URL: b.URL, Principal: b.Principal, Origin: OriginMode(b.Origin), Entities: spec.Entities}
			for _, c := range b.Collections {
				cfg.Collections = append(cfg.Collections, Collection{Name: c.Name, Path: c.Path, DisplayName: c.DisplayName, Component: string(c.Component)})
			}
			if b.Timeout != "" {
				d, err := time.ParseDuration(b.Timeout)
				if err != nil || d <= 0 {
					return Config{}, connector.InvalidConfig(fmt.Errorf("%s: %q is not a positive duration", cfg.field("timeout"), b.Timeout))
				}
				cfg.RequestTimeout = d
			}
			return cfg, nil
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
