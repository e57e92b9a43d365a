package controllers_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func chainUser(ns, name, email, chain, startAt string) *syncv1alpha1.SyncUser {
	return &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: email},
			ChainRef: &syncv1alpha1.ChainReference{Name: chain, StartAt: startAt},
		},
	}
}

func policyUser(ns, name, email, policy string) *syncv1alpha1.SyncUser {
	return &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{
			Identity:  syncv1alpha1.UserIdentity{Email: email},
			PolicyRef: &syncv1alpha1.PolicyReference{Name: policy},
		},
	}
}

func TestFiftyUsersCompleteAThreeStepChain(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	const users = 50
	var people [][5]string
	for i := range users {
		people = append(people, person(i))
	}
	hrExport(t, ns, people)
	db := directory(t, ns)

	// Three policies over the same two endpoints, hence the same records: import, verify, and
	// business as usual with deletes propagating.
	for _, name := range []string{"import", "verify", "bau"} {
		g.Expect(k8s.Create(ctx(t), hrPolicy(ns, name, func(p *syncv1alpha1.SyncPolicy) {
			p.Spec.Deletes.Propagate = name == "bau"
		}))).To(Succeed())
	}
	g.Expect(k8s.Create(ctx(t), &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "import"}, {Name: "verify", Policy: "verify"}, {Name: "bau", Policy: "bau"},
		}},
	})).To(Succeed())
	for i := range users {
		g.Expect(k8s.Create(ctx(t), chainUser(ns, fmt.Sprintf("user%03d", i), people[i][1], "onboarding", ""))).To(Succeed())
	}

	chain := &syncv1alpha1.OnboardingChain{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "onboarding"}, chain)).To(Succeed())
		g.Expect(chain.Status.CompletedUsers).To(BeEquivalentTo(users))
		g.Expect(meta.IsStatusConditionTrue(chain.Status.Conditions, syncv1alpha1.CompletedCondition)).To(BeTrue())
	}, 3*time.Minute, time.Second).Should(Succeed())
	g.Expect(chain.Status.Users).To(BeEquivalentTo(users))
	g.Expect(chain.Status.Steps[2].Users).To(BeEquivalentTo(users), "every user stays on the last step")
	g.Expect(meta.IsStatusConditionTrue(chain.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
	g.Expect(meta.FindStatusCondition(chain.Status.Conditions, syncv1alpha1.ReconcilingCondition)).To(BeNil())

	var list syncv1alpha1.SyncUserList
	g.Expect(k8s.List(ctx(t), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(users))
	for _, u := range list.Items {
		var steps []string
		for _, h := range u.Status.History {
			steps = append(steps, h.Step)
			if h.Step != "bau" {
				g.Expect(h.CompletedTime).NotTo(BeNil(), "%s left step %s at a known time", u.Name, h.Step)
			}
		}
		g.Expect(steps).To(Equal([]string{"import", "verify", "bau"}), u.Name)
		g.Expect(u.Status.Policy).To(Equal("bau"))
		g.Expect(u.Status.LastCycle.Empty).To(BeTrue())
		g.Expect(u.Status.NextSyncTime).NotTo(BeNil())
		g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
	}

	// Each person was created once, on the first step; moving along the chain created nothing.
	var want []string
	for _, p := range people {
		want = append(want, p[1]+" "+p[2])
	}
	g.Expect(peopleIn(t, db)).To(Equal(want))

	policy := &syncv1alpha1.SyncPolicy{}
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "bau"}, policy)).To(Succeed())
	g.Expect(policy.Status.Users.Assigned).To(BeEquivalentTo(users))
	g.Expect(policy.Status.Users.Synced).To(BeEquivalentTo(users))
}
