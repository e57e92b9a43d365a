package controllers_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/jobargs"
)

// The attacker of these tests may create SyncPolicies and SyncUsers in their namespace, but not
// read its Secrets: each test points a policy at something it should not reach.

const password = "pw-6f1c2e9a-never-shown"

// crmSecret is a Secret holding the CRM's credentials, opted in or not, allowing destinations.
func crmSecret(ns string, optedIn bool, allowed string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "crm-db", Namespace: ns, Annotations: map[string]string{}},
		StringData: map[string]string{"username": "chainsync", "password": password},
	}
	if optedIn {
		s.Labels = map[string]string{syncv1alpha1.CredentialsLabel: "true"}
	}
	if allowed != "" {
		s.Annotations[syncv1alpha1.AllowedDestinationsAnnotation] = allowed
	}
	return s
}

// crmPolicy reads the CRM (postgres at host) into the directory.
func crmPolicy(ns, name, host string, mutate ...func(*syncv1alpha1.SyncPolicy)) *syncv1alpha1.SyncPolicy {
	return hrPolicy(ns, name, append([]func(*syncv1alpha1.SyncPolicy){func(p *syncv1alpha1.SyncPolicy) {
		p.Spec.Source = syncv1alpha1.Endpoint{Name: "crm", Connector: syncv1alpha1.PostgresConnector,
			Postgres: &syncv1alpha1.PostgresEndpoint{Host: host, Port: 1, Database: "crm", SSLMode: "disable",
				CredentialsSecretRef: syncv1alpha1.CredentialsSecretReference{Name: "crm-db", UsernameKey: "username", PasswordKey: "password"}}}
		p.Spec.Entities[0].Source = syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"employee_id"},
			Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}}
	}}, mutate...)...)
}

func policyJobs(g Gomega, t *testing.T, ns, policy string) []batchv1.Job {
	var jobs batchv1.JobList
	g.Expect(k8s.List(ctx(t), &jobs, client.InNamespace(ns), client.MatchingLabels{syncv1alpha1.PolicyLabel: policy})).To(Succeed())
	return jobs.Items
}

func eventuallyPolicyStalled(t *testing.T, ns, name, reason string) *syncv1alpha1.SyncPolicy {
	t.Helper()
	p := &syncv1alpha1.SyncPolicy{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
		stalled := findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled.Reason).To(Equal(reason))
	}, wait).Should(Succeed())
	return p
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func TestSecretsGoOnlyWhereTheirOwnerAllows(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	directory(t, ns)
	user := policyUser(ns, "ada", person(1)[1], "crm")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())

	// A Secret that never opted in is not chainsync's to use, whatever host the policy names.
	secret := crmSecret(ns, false, "")
	g.Expect(k8s.Create(ctx(t), secret)).To(Succeed())
	g.Expect(k8s.Create(ctx(t), crmPolicy(ns, "crm", "attacker.example.com"))).To(Succeed())
	p := eventuallyPolicyStalled(t, ns, "crm", syncv1alpha1.SyncPolicySecretNotAllowedReason)
	g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).Message).To(ContainSubstring(syncv1alpha1.CredentialsLabel))

	// Opted in for the real CRM only: the attacker's host is refused, before any Job exists.
	secret.Labels = map[string]string{syncv1alpha1.CredentialsLabel: "true"}
	secret.Annotations = map[string]string{syncv1alpha1.AllowedDestinationsAnnotation: "crm-db.crm.svc"}
	g.Expect(k8s.Update(ctx(t), secret)).To(Succeed())
	p = eventuallyPolicyStalled(t, ns, "crm", syncv1alpha1.SyncPolicyDestinationNotAllowedReason)
	g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).Message).To(ContainSubstring("attacker.example.com:1"))
	g.Consistently(func(g Gomega) { g.Expect(policyJobs(g, t, ns, "crm")).To(BeEmpty()) }, 2*time.Second).Should(Succeed())

	// The owner allows the host the policy names (nothing listens there): the Job runs and
	// mounts only the keys the policy names; the cycle fails to connect, and the password is
	// nowhere a person or another tenant could read it.
	secret.Annotations[syncv1alpha1.AllowedDestinationsAnnotation] = "127.0.0.1:1"
	secret.StringData = map[string]string{"unrelated": "not-for-chainsync"}
	g.Expect(k8s.Update(ctx(t), secret)).To(Succeed())
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "crm"}, p)).To(Succeed())
	p.Spec.Source.Postgres.Host = "127.0.0.1"
	g.Expect(k8s.Update(ctx(t), p)).To(Succeed())
	failed := eventuallyCycled(t, ns, "ada", "crm", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.FailureReason).To(Equal("EndpointUnavailable"))
	})
	jobs := policyJobs(g, t, ns, "crm")
	g.Expect(jobs).NotTo(BeEmpty())
	pod := jobs[0].Spec.Template.Spec
	var mounted []corev1.KeyToPath
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			g.Expect(v.Secret.SecretName).To(Equal("crm-db"))
			mounted = append(mounted, v.Secret.Items...)
		}
	}
	g.Expect(mounted).To(ConsistOf(corev1.KeyToPath{Key: "username", Path: "username"}, corev1.KeyToPath{Key: "password", Path: "password"}))
	args, err := jobargs.ParseCycle(pod.Containers[0].Args)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(args.AllowedDestinations).To(Equal([]string{"127.0.0.1:1"}))

	var events eventsv1.EventList
	g.Expect(k8s.List(ctx(t), &events, client.InNamespace(ns))).To(Succeed())
	for _, obj := range []any{jobs, failed.Status, p.Status, events.Items} {
		b, err := json.Marshal(obj)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(b)).NotTo(ContainSubstring(password))
	}
	// The cycle pods' output and the record store (the claim) hold no password either.
	for _, dir := range []string{filepath.Join(dataDir, ns, "pods"), claimDir(ns)} {
		g.Expect(filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(path, string(filepath.Separator)+"volumes"+string(filepath.Separator)) {
				return err // The pod's own secret volume is the one place it belongs.
			}
			b, err := os.ReadFile(path)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(b)).NotTo(ContainSubstring(password), path)
			return nil
		})).To(Succeed())
	}
}

func TestCyclePodsCannotReadSecrets(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	g.Expect(k8s.Create(ctx(t), crmSecret(ns, true, "crm-db.crm.svc"))).To(Succeed())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":chainsync-cycle"}
	asCycle, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	err = asCycle.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "crm-db"}, &corev1.Secret{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "reading a Secret as the cycle service account: %v", err)
	// What it needs it still may: read its users.
	g.Expect(asCycle.List(ctx(t), &syncv1alpha1.SyncUserList{}, client.InNamespace(ns))).To(Succeed())
}

func TestJobsRunOnlyAsServiceAccountsMeantForCycles(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	hrExport(t, ns, [][5]string{person(1)})
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", person(1)[1], "hr"))).To(Succeed())

	// "default" exists in every namespace and may hold whatever its namespace granted it.
	g.Expect(k8s.Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hr", func(p *syncv1alpha1.SyncPolicy) { p.Spec.JobTemplate.ServiceAccountName = "deployer" }))).To(Succeed())
	p := eventuallyPolicyStalled(t, ns, "hr", syncv1alpha1.SyncPolicyServiceAccountNotAllowedReason)
	g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).Message).To(ContainSubstring(`"deployer"`))
	g.Consistently(func(g Gomega) { g.Expect(policyJobs(g, t, ns, "hr")).To(BeEmpty()) }, 2*time.Second).Should(Succeed())

	p.Spec.JobTemplate.ServiceAccountName = "nobody"
	g.Expect(k8s.Update(ctx(t), p)).To(Succeed())
	eventuallyPolicyStalled(t, ns, "hr", syncv1alpha1.SyncPolicyServiceAccountNotFoundReason)

	// The namespace's administrator labels the account: cycles run as it.
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "hr"}, p)).To(Succeed())
	p.Spec.JobTemplate.ServiceAccountName = "chainsync-cycle"
	g.Expect(k8s.Update(ctx(t), p)).To(Succeed())
	eventuallyCycled(t, ns, "ada", "hr", func(g Gomega, c *syncv1alpha1.CycleResult) { g.Expect(c.FailureReason).To(BeEmpty()) })
}

func TestCycleJobsAreBoundedAndLocked(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	// Created through the API server, so the CRD's defaults apply as they do for a user.
	p := crmPolicy(ns, "crm", "crm-db.crm.svc")
	g.Expect(k8s.Create(ctx(t), p)).To(Succeed())
	g.Expect(p.Spec.JobTemplate.ActiveDeadlineSeconds).To(HaveValue(BeEquivalentTo(3600)))
	g.Expect(p.Spec.JobTemplate.Resources.Limits.Memory().String()).To(Equal("1Gi"))
	g.Expect(p.Spec.JobTemplate.Resources.Requests.Cpu().String()).To(Equal("100m"))

	job := controllers.CycleJobBuilder{Image: "chainsync:test"}.CycleJob(p, "crm-1", []string{"ada"})
	g.Expect(job.Spec.ActiveDeadlineSeconds).To(HaveValue(BeEquivalentTo(3600)))
	c := job.Spec.Template.Spec.Containers[0]
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("1Gi"))
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(*job.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(m.MountPath, controllers.SecretsRoot) {
			g.Expect(m.ReadOnly).To(BeTrue())
		}
	}
	b, err := json.Marshal(job)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).NotTo(ContainSubstring(password))
}
