package cycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/connector/registry"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/members"
)

// MembersReader reads an enrolment's members from its source, in a Job of the source policy's
// template: it opens the policy's endpoint as a cycle does (its Secrets mounted, its
// destinations checked by the operator) but reads one collection whole, with no user's scope.
type MembersReader struct {
	jobargs.ReadMembers
	Client client.Client
	// FSRoot prefixes every absolute path, as for Runner.
	FSRoot string
	Log    logr.Logger
}

// membersEntity is the name the members' collection goes by inside the connector.
const membersEntity = "members"

// Run reads the members and writes them to the enrolment's ConfigMap. A read that fails writes
// nothing: the members of the read before stand, and the operator removes nobody.
func (r *MembersReader) Run(ctx context.Context) error {
	started := time.Now()
	enrolment := &syncv1alpha1.SyncEnrolment{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Enrolment}, enrolment); err != nil {
		return fmt.Errorf("reading SyncEnrolment %s/%s: %w", r.Namespace, r.Enrolment, err)
	}
	src := enrolment.Spec.Source
	if src == nil {
		return fmt.Errorf("SyncEnrolment %s/%s has no spec.source to read", r.Namespace, r.Enrolment)
	}
	policy := &syncv1alpha1.SyncPolicy{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: src.PolicyRef.Name}, policy); err != nil {
		return fmt.Errorf("reading SyncPolicy %s/%s named by spec.source.policyRef: %w", r.Namespace, src.PolicyRef.Name, err)
	}
	if err := checkDestinations(policy, r.AllowedDestinations); err != nil {
		return err
	}
	secrets, err := readSecrets(policy, r.FSRoot, r.Secrets)
	if err != nil {
		return err
	}
	eps := endpoints{policy: policy, secrets: secrets, fsRoot: r.FSRoot, volumes: r.Volumes}
	conn, err := registry.Open(ctx, memberEndpoint(policy, src), eps)
	if err != nil {
		return fmt.Errorf("opening the source: %w", err)
	}
	defer func() { _ = conn.Close() }()

	list, err := readMembers(ctx, conn, src)
	if err != nil {
		return err
	}
	list.Job, list.SourceHash, list.ReadTime = r.Job, r.SourceHash, started.UTC()
	if err := r.write(ctx, enrolment, list); err != nil {
		return err
	}
	r.Log.Info("Read the enrolment's members", "members", len(list.Members), "unreadable", list.Unreadable)
	return nil
}

// memberEndpoint is the source policy's endpoint with the members' collection as its one entity.
func memberEndpoint(policy *syncv1alpha1.SyncPolicy, src *syncv1alpha1.EnrolmentSource) endpoint.Spec {
	side, ep := "source", policy.Spec.Source
	if src.Endpoint == syncv1alpha1.TargetSide {
		side, ep = "target", policy.Spec.Target
	}
	coll := collection.Collection{Name: src.Collection, KeyFields: src.KeyFields, Where: src.Where}
	return endpoint.Spec{Side: side, Endpoint: ep, Entities: map[string]collection.Collection{membersEntity: coll}}
}

// readMembers reads every row of the collection as a member. A row that cannot be read is
// counted, not fatal: the rest still enrol, and the operator removes nobody after such a read.
func readMembers(ctx context.Context, conn connector.Connector, src *syncv1alpha1.EnrolmentSource) (members.List, error) {
	id := src.Identity
	fields := append([]string{}, src.KeyFields...)
	for _, f := range []string{id.Email, id.Name} {
		if f != "" {
			fields = append(fields, f)
		}
	}
	for _, f := range id.Attributes {
		fields = append(fields, f)
	}
	var list members.List
	for item, err := range conn.ReadAll(ctx, connector.ReadRequest{Entity: membersEntity, Fields: fields}) {
		if err != nil {
			var itemErr *connector.ItemError
			if errors.As(err, &itemErr) {
				list.Unreadable++
				continue
			}
			return members.List{}, fmt.Errorf("reading the members: %w", err)
		}
		m := members.Member{Key: item.ID, Email: text(item, id.Email), Name: text(item, id.Name)}
		for attr, f := range id.Attributes {
			if v := text(item, f); v != "" {
				if m.Attributes == nil {
					m.Attributes = map[string]string{}
				}
				m.Attributes[attr] = v
			}
		}
		list.Members = append(list.Members, m)
	}
	return list, nil
}

func text(item connector.Item, field string) string {
	if field == "" {
		return ""
	}
	v, ok := item.Fields[field]
	if !ok || v.IsNull() {
		return ""
	}
	return v.Text
}

// write puts the list in the enrolment's ConfigMap, owned by the enrolment so it goes with it.
func (r *MembersReader) write(ctx context.Context, enrolment *syncv1alpha1.SyncEnrolment, list members.List) error {
	data, err := members.Encode(list)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: r.Namespace, Name: members.ConfigMapName(enrolment.Name)}
	err = r.Client.Get(ctx, key, cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	exists := err == nil
	if exists && !metav1.IsControlledBy(cm, enrolment) {
		return fmt.Errorf("ConfigMap %s exists and is not the enrolment's; delete or rename it", key)
	}
	cm.Name, cm.Namespace = key.Name, key.Namespace
	cm.Labels = map[string]string{syncv1alpha1.EnrolmentLabel: enrolment.Name}
	owner := metav1.NewControllerRef(enrolment, syncv1alpha1.GroupVersion.WithKind("SyncEnrolment"))
	owner.BlockOwnerDeletion = ptr.To(false) // The Job's service account needs no finalizer rights on enrolments.
	cm.OwnerReferences = []metav1.OwnerReference{*owner}
	cm.Data = nil
	cm.BinaryData = map[string][]byte{members.DataKey: data}
	if exists {
		err = r.Client.Update(ctx, cm)
	} else {
		err = r.Client.Create(ctx, cm)
	}
	if err != nil {
		return fmt.Errorf("writing the members to ConfigMap %s: %w", key, err)
	}
	return nil
}
