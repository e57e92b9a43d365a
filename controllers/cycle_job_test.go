package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
)

func TestCycleJobSaysWhatToRunInTheContractAndWhomInAnAnnotation(t *testing.T) {
	g := NewWithT(t)
	policy := fx.HourlyPolicy()
	policy.UID = "policy-uid"
	job := CycleJobBuilder{Image: "chainsync:test"}.CycleJob(policy, "p-abc", []string{"u1", "u2", "u3"})

	got, err := jobargs.ParseCycle(job.Spec.Template.Spec.Containers[0].Args)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(jobargs.Cycle{Namespace: "ns", Policy: "p", Job: "p-abc", Store: "/chainsync/volumes/records/chainsync",
		Volumes: VolumesRoot, Secrets: SecretsRoot, Concurrency: 3, Shards: 3, LockTimeout: jobargs.DefaultLockTimeout,
		Users: []string{"u1", "u2", "u3"}}))
	g.Expect(job.Annotations).To(HaveKeyWithValue(jobUsersAnnotation, "u1,u2,u3"))
	g.Expect(jobUsers(job)).To(Equal([]string{"u1", "u2", "u3"}))
	g.Expect(metav1.GetControllerOf(job)).To(HaveValue(Equal(metav1.OwnerReference{APIVersion: "sync.chainsync.dev/v1alpha1",
		Kind: "SyncPolicy", Name: "p", UID: "policy-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)})))
}

// usersPerJob's maximum with names of 25 characters fits in the users annotation; the comment on
// jobUsersAnnotation says why longer ones at that count are left to the API server to refuse.
func TestTheUsersOfTheLargestJobFitInAnAnnotation(t *testing.T) {
	g := NewWithT(t)
	users := make([]string, 10000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%020d", i)
	}
	g.Expect(len(users[0])).To(Equal(25))
	job := CycleJobBuilder{}.CycleJob(fx.HourlyPolicy(), "p-abc", users)
	job.Annotations[podMessageAnnotation] = strings.Repeat("x", 1100) // added if the Job fails
	g.Expect(validation.ValidateAnnotations(job.Annotations, field.NewPath("metadata", "annotations"))).To(BeEmpty())
	g.Expect(jobUsers(job)).To(Equal(users))
}

func TestForgetJobIsOwnedByItsUserAndRunsItsOwnSubcommand(t *testing.T) {
	g := NewWithT(t)
	user := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: "ns", UID: types.UID("0123456789abcdef")}}
	job := CycleJobBuilder{Image: "chainsync:test"}.ForgetJob(fx.HourlyPolicy(), user)

	g.Expect(job.Name).To(Equal("ada-forget-01234567"))
	got, err := jobargs.ParseForgetRecords(job.Spec.Template.Spec.Containers[0].Args)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(jobargs.ForgetRecords{Namespace: "ns", Job: "ada-forget-01234567",
		Store: "/chainsync/volumes/records/chainsync", LockTimeout: jobargs.DefaultLockTimeout, Users: []string{"ada"}}))
	g.Expect(metav1.GetControllerOf(job)).To(HaveValue(Equal(metav1.OwnerReference{APIVersion: "sync.chainsync.dev/v1alpha1",
		Kind: "SyncUser", Name: "ada", UID: "0123456789abcdef", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(false)})),
		"garbage-collected with its user, without holding up the user's deletion")
	g.Expect(job.Labels).To(HaveKeyWithValue(syncv1alpha1.PolicyLabel, "p"))

	g.Expect(jobUsers(job)).To(BeEmpty(), "it cycles no one")
	g.Expect(usersOfJob(context.Background(), job)).To(Equal([]reconcile.Request{
		{NamespacedName: client.ObjectKey{Namespace: "ns", Name: "ada"}}}), "its end wakes the deleted user")
	g.Expect(observeJobs([]batchv1.Job{*job}).active).To(BeEmpty(), "not one of the policy's cycles")
}

func ptrTo[T any](v T) *T { return &v }
