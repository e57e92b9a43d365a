package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// PathPrefix starts every receiver's path.
const PathPrefix = "/hook/"

// Path is where a receiver is served: its token, namespace and name hashed, as Flux's
// notification-controller does, so knowing a receiver's name does not find it, and a new token
// retires the old path at once.
func Path(token []byte, namespace, name string) string {
	h := sha256.New()
	h.Write(token)
	h.Write([]byte(namespace))
	h.Write([]byte(name))
	return PathPrefix + hex.EncodeToString(h.Sum(nil))
}

// TokenProblem is why a receiver's token cannot be read, in words for its status: a person has
// to create the Secret, add the key, or opt the Secret in.
type TokenProblem struct {
	Reason, Message string
}

// Tokens reads receivers' tokens. The operator keeps only Secrets' metadata in its cache; a
// token is read from the API server (uncached) once per resourceVersion of its Secret and held
// here, the one Secret value the operator keeps.
type Tokens struct {
	// Metadata reads Secrets' metadata, from the manager's metadata-only cache.
	Metadata client.Reader
	// Secrets reads a Secret's values: the manager's API reader, not its cache.
	Secrets client.Reader

	mu      sync.Mutex
	entries map[tokenKey]tokenEntry
}

type tokenKey struct {
	uid types.UID
	key string
}

type tokenEntry struct {
	resourceVersion string
	value           []byte
}

// Token returns the receiver's token, or the problem that keeps it from being read.
func (t *Tokens) Token(ctx context.Context, rcv *syncv1alpha1.SyncReceiver) ([]byte, *TokenProblem, error) {
	ref := rcv.Spec.SecretRef
	key := ref.Key
	if key == "" {
		key = "token"
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := t.Metadata.Get(ctx, client.ObjectKey{Namespace: rcv.Namespace, Name: ref.Name}, meta)
	if apierrors.IsNotFound(err) {
		return nil, &TokenProblem{syncv1alpha1.SyncReceiverSecretNotFoundReason, fmt.Sprintf("spec.secretRef: Secret %q not found", ref.Name)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the metadata of Secret %s: %w", ref.Name, err)
	}
	if meta.Labels[syncv1alpha1.CredentialsLabel] != "true" {
		return nil, &TokenProblem{syncv1alpha1.SyncReceiverSecretNotAllowedReason,
			fmt.Sprintf("spec.secretRef: Secret %q is not labelled %s=true; its owner must opt it in to chainsync",
				ref.Name, syncv1alpha1.CredentialsLabel)}, nil
	}

	k := tokenKey{meta.UID, key}
	t.mu.Lock()
	e, ok := t.entries[k]
	t.mu.Unlock()
	if !ok || e.resourceVersion != meta.ResourceVersion {
		secret := &corev1.Secret{}
		err := t.Secrets.Get(ctx, client.ObjectKey{Namespace: rcv.Namespace, Name: ref.Name}, secret)
		if apierrors.IsNotFound(err) {
			return nil, &TokenProblem{syncv1alpha1.SyncReceiverSecretNotFoundReason, fmt.Sprintf("spec.secretRef: Secret %q not found", ref.Name)}, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
		}
		e = tokenEntry{resourceVersion: secret.ResourceVersion, value: secret.Data[key]}
		t.mu.Lock()
		if t.entries == nil {
			t.entries = map[tokenKey]tokenEntry{}
		}
		t.entries[tokenKey{secret.UID, key}] = e
		t.mu.Unlock()
	}
	if len(e.value) == 0 {
		return nil, &TokenProblem{syncv1alpha1.SyncReceiverSecretNotFoundReason,
			fmt.Sprintf("spec.secretRef: Secret %q has no key %q, or it is empty", ref.Name, key)}, nil
	}
	return e.value, nil, nil
}
