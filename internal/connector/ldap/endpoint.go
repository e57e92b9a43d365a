package ldap

import (
	"context"
	"fmt"
	"time"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// EndpointBlock is a SyncPolicy endpoint's ldap block.
type EndpointBlock = syncv1alpha1.LDAPEndpoint

// CollectionBlock is one of the block's collections.
type CollectionBlock = syncv1alpha1.LDAPCollection

// Kind makes ldap connectors from a SyncPolicy endpoint's ldap block.
var Kind = NewKind(func(spec endpoint.Spec) *EndpointBlock { return spec.Endpoint.LDAP })

// NewKind makes ldap connectors from the ldap block that block finds in a
// SyncPolicy endpoint (spec.Endpoint.LDAP once the API has it).
func NewKind(block func(endpoint.Spec) *EndpointBlock) endpoint.Kind[Config] {
	return endpoint.Kind[Config]{
		Decode: func(spec endpoint.Spec) (Config, error) { return decode(spec, block(spec)) },
		Connect: func(ctx context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
			return connect(ctx, cfg, spec.Side, block(spec), env)
		},
	}
}

func decode(spec endpoint.Spec, b *EndpointBlock) (Config, error) {
	if b == nil {
		return Config{}, connector.InvalidConfig(fmt.Errorf("%s.ldap: must be set for connector ldap", spec.Side))
	}
	cfg := Config{Side: spec.Side, URL: b.URL, StartTLS: b.StartTLS, BaseDN: b.BaseDN, PageSize: int(b.PageSize), Entities: spec.Entities}
	if b.Timeout != "" {
		d, err := time.ParseDuration(b.Timeout)
		if err != nil || d <= 0 {
			return Config{}, connector.InvalidConfig(fmt.Errorf("%s: %q is not a positive duration such as 30s", cfg.field("timeout"), b.Timeout))
		}
		cfg.Timeout = d
	}
	for _, c := range b.Collections {
		cfg.Collections = append(cfg.Collections, Class{Name: c.Name, ObjectClasses: c.ObjectClasses, RDNAttribute: c.RDNAttribute,
			ParentDN: c.ParentDN, Filter: c.Filter, OriginAttribute: c.OriginAttribute, OriginObjectClass: c.OriginObjectClass,
			BinaryAttributes: c.BinaryAttributes})
	}
	return cfg, nil
}

// connect reads the bind credentials (and CA) of the Secrets the block
// names, then connects; without bindSecretRef the connection is anonymous.
func connect(ctx context.Context, cfg Config, side string, b *EndpointBlock, env endpoint.Env) (connector.Connector, error) {
	secret := func(field string, ref syncv1alpha1.SecretKeyReference) (string, error) {
		v, err := env.Secret(ref)
		if err != nil {
			return "", fmt.Errorf("%s.ldap.%s: %w", side, field, err)
		}
		return v, nil
	}
	var err error
	if creds := b.BindSecretRef; creds != nil {
		if cfg.BindDN, err = secret("bindSecretRef", syncv1alpha1.SecretKeyReference{Name: creds.Name, Key: creds.UsernameKey}); err != nil {
			return nil, err
		}
		if cfg.BindPassword, err = secret("bindSecretRef", syncv1alpha1.SecretKeyReference{Name: creds.Name, Key: creds.PasswordKey}); err != nil {
			return nil, err
		}
	}
	if b.CASecretRef != nil {
		if cfg.CAPEM, err = secret("caSecretRef", *b.CASecretRef); err != nil {
			return nil, err
		}
	}
	return New(ctx, cfg)
}
