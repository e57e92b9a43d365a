package rest

import (
	"context"
	"fmt"
	"time"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes http connectors from a SyncPolicy endpoint's http block.
var Kind = kindFor(func(spec endpoint.Spec) *syncv1alpha1.HTTPEndpoint { return spec.Endpoint.HTTP })

// kindFor makes http connectors from the block that block finds in a SyncPolicy endpoint.
func kindFor(block func(endpoint.Spec) *syncv1alpha1.HTTPEndpoint) endpoint.Kind[Config] {
	return endpoint.Kind[Config]{
		Decode: func(spec endpoint.Spec) (Config, error) {
			b := block(spec)
			if b == nil {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s.http: must be set for connector http", spec.Side))
			}
			return decodeBlock(spec, b)
		},
		Connect: func(ctx context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
			a := block(spec).Auth
			field := func(name string) string { return cfg.field("auth." + name) }
			var err error
			switch {
			case a.BearerTokenSecretRef != nil:
				cfg.Auth.BearerToken, err = endpoint.Secret(env, field("bearerTokenSecretRef"), *a.BearerTokenSecretRef)
			case a.BasicAuthSecretRef != nil:
				cfg.Auth.Username, cfg.Auth.Password, err = endpoint.Credentials(env, field("basicAuthSecretRef"), *a.BasicAuthSecretRef)
			case a.APIKey != nil:
				cfg.Auth.APIKeyHeader = a.APIKey.Header
				cfg.Auth.APIKey, err = endpoint.Secret(env, field("apiKey.secretRef"), a.APIKey.SecretRef)
			case a.OAuth2 != nil:
				cfg.Auth.OAuth2.ClientID, cfg.Auth.OAuth2.ClientSecret, err = endpoint.Credentials(env, field("oauth2.clientSecretRef"), a.OAuth2.ClientSecretRef)
			}
			if err != nil {
				return nil, err
			}
			return New(ctx, cfg)
		},
	}
}

// decodeBlock reads the block into a Config, without its Secrets.
func decodeBlock(spec endpoint.Spec, b *syncv1alpha1.HTTPEndpoint) (Config, error) {
	cfg := Config{Side: spec.Side, BaseURL: b.BaseURL, Entities: spec.Entities, Resources: map[string]Resource{},
		RequestsPerSecond: float64(b.RequestsPerSecond), MaxPages: int(b.MaxPages)}
	var err error
	if cfg.RequestTimeout, err = duration(b.Timeout); err != nil {
		return Config{}, connector.InvalidConfig(fmt.Errorf("%s: %w", cfg.field("timeout"), err))
	}
	if b.Auth.OAuth2 != nil {
		cfg.Auth.OAuth2 = &OAuth2{TokenURL: b.Auth.OAuth2.TokenURL, Scopes: b.Auth.OAuth2.Scopes}
	}
	for _, r := range b.Resources {
		if _, dup := cfg.Resources[r.Name]; dup {
			return Config{}, connector.InvalidConfig(fmt.Errorf("%s: %q is listed twice", cfg.field("resources"), r.Name))
		}
		res := Resource{ListPath: r.ListPath, ItemsAt: r.ItemsAt, ItemPath: r.ItemPath, ItemAt: r.ItemAt, IDField: r.IDField,
			OriginField: r.OriginField}
		for _, q := range r.ListQuery {
			res.ListQuery = append(res.ListQuery, Param{Name: q.Name, Value: q.Value})
		}
		for _, w := range []struct {
			from *syncv1alpha1.HTTPRequest
			to   *Request
		}{{r.Create, &res.Create}, {r.Update, &res.Update}, {r.Delete, &res.Delete}} {
			if w.from != nil {
				*w.to = Request{Method: w.from.Method, Path: w.from.Path}
			}
		}
		if p := r.Pagination; p != nil {
			res.Pagination = Pagination{Mode: PaginationMode(p.Mode), PageParam: p.PageParam, OffsetParam: p.OffsetParam,
				CursorParam: p.CursorParam, SizeParam: p.SizeParam, PageSize: int(p.PageSize), NextCursor: p.NextCursor,
				TotalHeader: p.TotalHeader, TotalAt: p.TotalAt}
			if p.FirstPage != nil {
				first := int(*p.FirstPage)
				res.Pagination.FirstPage = &first
			}
		}
		if m := r.ModifiedSince; m != nil {
			res.ModifiedSince = &ModifiedSince{Param: m.Param, Format: TimeFormat(m.Format)}
			if res.ModifiedSince.Overlap, err = duration(m.Overlap); err != nil {
				return Config{}, connector.InvalidConfig(fmt.Errorf("%s: %w", cfg.resourceField(r.Name, "modifiedSince.overlap"), err))
			}
		}
		cfg.Resources[r.Name] = res
	}
	return cfg, nil
}

func duration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
