package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/credentials"
)

type referenceProblem struct{ reason, message string }

// checkReferences finds the first reason the policy's Jobs must not start: a missing
// PersistentVolumeClaim, a service account that is missing or not meant for cycles, or a Secret
// that is missing, lacks a key, has not opted in, or may not be sent where an endpoint points.
// Every check happens before any Job exists, so nothing is mounted or sent on a refused policy.
func (r *SyncPolicyReconciler) checkReferences(ctx context.Context, policy *syncv1alpha1.SyncPolicy) (*referenceProblem, error) {
	for _, claim := range policy.Claims() {
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: claim}, pvc)
		if apierrors.IsNotFound(err) {
			return &referenceProblem{syncv1alpha1.SyncPolicyStoreNotFoundReason,
				fmt.Sprintf("PersistentVolumeClaim %q not found", claim)}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if problem, err := r.checkServiceAccount(ctx, policy); problem != nil || err != nil {
		return problem, err
	}
	return r.checkSecrets(ctx, policy)
}

// checkServiceAccount allows only service accounts labelled for cycles: jobTemplate is free
// text, and any other account of the namespace may hold permissions the policy author lacks.
func (r *SyncPolicyReconciler) checkServiceAccount(ctx context.Context, policy *syncv1alpha1.SyncPolicy) (*referenceProblem, error) {
	name := policy.Spec.JobTemplate.ServiceAccountName
	sa, err := r.metadata(ctx, "ServiceAccount", policy.Namespace, name)
	if apierrors.IsNotFound(err) {
		return &referenceProblem{syncv1alpha1.SyncPolicyServiceAccountNotFoundReason,
			fmt.Sprintf("jobTemplate.serviceAccountName: ServiceAccount %q not found", name)}, nil
	}
	if err != nil {
		return nil, err
	}
	if sa.Labels[syncv1alpha1.CycleServiceAccountLabel] != "true" {
		return &referenceProblem{syncv1alpha1.SyncPolicyServiceAccountNotAllowedReason,
			fmt.Sprintf("jobTemplate.serviceAccountName: ServiceAccount %q is not labelled %s=true; cycle Jobs run only as service accounts meant for them",
				name, syncv1alpha1.CycleServiceAccountLabel)}, nil
	}
	return nil, nil
}

// checkSecrets reads Secrets' metadata from the cache and, for Secrets that opted in, their key
// names from the API server once per resourceVersion.
func (r *SyncPolicyReconciler) checkSecrets(ctx context.Context, policy *syncv1alpha1.SyncPolicy) (*referenceProblem, error) {
	for _, use := range policy.SecretUses() {
		meta, err := r.metadata(ctx, "Secret", policy.Namespace, use.Name)
		if apierrors.IsNotFound(err) {
			return &referenceProblem{syncv1alpha1.SyncPolicySecretNotFoundReason,
				fmt.Sprintf("%s: Secret %q not found", use.Field, use.Name)}, nil
		}
		if err != nil {
			return nil, err
		}
		if meta.Labels[syncv1alpha1.CredentialsLabel] != "true" {
			return &referenceProblem{syncv1alpha1.SyncPolicySecretNotAllowedReason,
				fmt.Sprintf("%s: Secret %q is not labelled %s=true; its owner must opt it in to chainsync",
					use.Field, use.Name, syncv1alpha1.CredentialsLabel)}, nil
		}
		allowed, err := credentials.Parse(meta.Annotations[syncv1alpha1.AllowedDestinationsAnnotation])
		if err != nil {
			return &referenceProblem{syncv1alpha1.SyncPolicySecretNotAllowedReason,
				fmt.Sprintf("%s: Secret %q: annotation %s: %v", use.Field, use.Name, syncv1alpha1.AllowedDestinationsAnnotation, err)}, nil
		}
		if !allowed.Allows(use.Destination) {
			return &referenceProblem{syncv1alpha1.SyncPolicyDestinationNotAllowedReason,
				fmt.Sprintf("%s: Secret %q may not be sent to %s; its annotation %s must list that host",
					use.Field, use.Name, use.Destination, syncv1alpha1.AllowedDestinationsAnnotation)}, nil
		}
		keys, err := r.secretKeys.keys(ctx, r.APIReader, meta)
		if apierrors.IsNotFound(err) {
			return &referenceProblem{syncv1alpha1.SyncPolicySecretNotFoundReason,
				fmt.Sprintf("%s: Secret %q not found", use.Field, use.Name)}, nil
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(keys, use.Key) {
			return &referenceProblem{syncv1alpha1.SyncPolicySecretNotFoundReason,
				fmt.Sprintf("%s: Secret %q has no key %q", use.Field, use.Name, use.Key)}, nil
		}
	}
	return nil, nil
}

// metadata reads an object's metadata from the manager's metadata-only cache.
func (r *SyncPolicyReconciler) metadata(ctx context.Context, kind, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return obj, r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
}

// secretKeyCache keeps the key names of Secrets, by UID and resourceVersion, so a policy's
// reconcile reads a Secret from the API server only when it changed, and the operator holds no
// Secret value beyond that one read.
type secretKeyCache struct {
	mu      sync.Mutex
	entries map[types.UID]secretKeys
}

type secretKeys struct {
	resourceVersion string
	names           []string
}

func (c *secretKeyCache) keys(ctx context.Context, reader client.Reader, meta *metav1.PartialObjectMetadata) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[meta.UID]
	c.mu.Unlock()
	if ok && e.resourceVersion == meta.ResourceVersion {
		return e.names, nil
	}
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: meta.Namespace, Name: meta.Name}, secret); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(secret.Data))
	for k := range secret.Data {
		names = append(names, k)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[types.UID]secretKeys{}
	}
	c.entries[secret.UID] = secretKeys{resourceVersion: secret.ResourceVersion, names: names}
	return names, nil
}
