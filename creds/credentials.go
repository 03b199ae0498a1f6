package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/api/option"

	"github.com/plxfs/plxfs/connspec"
)

// Credentials types besides the key types (TypeServiceAccount, TypeAuthorizedUser,
// TypeExternalAccount).
const (
	TypeADC       = "adc"       // Application Default Credentials, found by the Google client
	TypeAnonymous = "anonymous" // --anonymous: unauthenticated requests
	TypeEmulator  = "emulator"  // an emulator endpoint: no credentials
)

// Credentials is the outcome of Resolve for one connection. It carries the key JSON but never
// shows it: String, GoString, slog and encoding/json all see only the exported fields below.
type Credentials struct {
	// Source says where the credentials came from, e.g.
	// "GC_KEY_PATH=/etc/gcs/gc-secret.json (process env)" or
	// "secret gcs-secret mounted at /etc/gcs (gc-secret.json)". Never key material.
	Source string
	// Type is "service_account", "authorized_user", "external_account", "adc", "anonymous" or
	// "emulator".
	Type string
	// Scopes are the OAuth scopes to request (DefaultScopes unless configured); nil for
	// anonymous and emulator.
	Scopes []string
	// Project is GC_PROJECT & co. if set, else a service account key's project_id; may be "".
	Project string

	key []byte // the validated key JSON for the key types; nil otherwise
	// unmounted are the connection's secret and configMap whose mountPath does not exist
	// (skipped, as Polyaxon skips them); see ExplainClientError.
	unmounted []mount
}

// ExplainClientError explains err, a failure to create a storage client with c for conn, when
// Application Default Credentials were used only because conn's secret (or configMap)
// mountPath does not exist: the SDK's "could not find default credentials" then hides the
// real problem, a secret that is not mounted. It names the connection, the mountPath and what
// to check. Any other error is returned as it is.
func (c Credentials) ExplainClientError(conn connspec.Connection, err error) error {
	if err == nil || c.Type != TypeADC || len(c.unmounted) == 0 {
		return err
	}
	m := c.unmounted[0]
	return &Error{Connection: conn.Name, Pos: conn.Pos, Source: m.label, Err: fmt.Errorf(
		"%s was not found, and no other credentials were (none in the connection or the environment, no Application Default Credentials); "+
			"check that the %s is mounted at %s (Kubernetes: the pod's volumes and volumeMounts), or set GC_KEY_PATH to a key file",
		m.path, m.kind, m.path)}
}

// String returns Source.
func (c Credentials) String() string { return c.Source }

// GoString keeps %#v from printing the key.
func (c Credentials) GoString() string {
	return fmt.Sprintf("creds.Credentials{Source:%q, Type:%q, Scopes:%q, Project:%q}",
		c.Source, c.Type, c.Scopes, c.Project)
}

// LogValue makes slog log the description, never the key.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("source", c.Source),
		slog.String("type", c.Type),
		slog.String("project", c.Project),
	)
}

// ClientOptions returns the options that make a Google API client (storage.NewClient) use these
// credentials: the key JSON with its type pinned and the scopes for key types; only the scopes
// for ADC, letting the client find Application Default Credentials itself; and
// option.WithoutAuthentication() for anonymous and emulator. ctx is unused today; it is there
// so that resolving ADC eagerly can be added without changing callers.
func (c Credentials) ClientOptions(ctx context.Context) ([]option.ClientOption, error) {
	_ = ctx
	switch c.Type {
	case TypeAnonymous, TypeEmulator:
		return []option.ClientOption{option.WithoutAuthentication()}, nil
	case TypeADC:
		return []option.ClientOption{option.WithScopes(c.scopes()...)}, nil
	}
	var ct option.CredentialsType
	switch c.Type {
	case TypeServiceAccount:
		ct = option.ServiceAccount
	case TypeAuthorizedUser:
		ct = option.AuthorizedUser
	case TypeExternalAccount:
		ct = option.ExternalAccount
	case "":
		return nil, errors.New("credentials were not resolved (zero Credentials)")
	default:
		return nil, fmt.Errorf("unknown credentials type %q", c.Type)
	}
	if len(c.key) == 0 {
		return nil, fmt.Errorf("credentials of type %s from %s carry no key (not made by Resolve?)", c.Type, c.Source)
	}
	return []option.ClientOption{
		option.WithAuthCredentialsJSON(ct, slices.Clone(c.key)),
		option.WithScopes(c.scopes()...),
	}, nil
}

func (c Credentials) scopes() []string {
	if len(c.Scopes) == 0 {
		return slices.Clone(DefaultScopes)
	}
	return slices.Clone(c.Scopes)
}
