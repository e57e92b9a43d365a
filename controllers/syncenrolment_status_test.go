package controllers

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/members"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
)

func hrEnrolment() *syncv1alpha1.SyncEnrolment {
	return &syncv1alpha1.SyncEnrolment{
		ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: "team", UID: types.UID("enrolment-uid"), Generation: 1},
		Spec: syncv1alpha1.SyncEnrolmentSpec{
			ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"},
			Source: &syncv1alpha1.EnrolmentSource{PolicyRef: syncv1alpha1.PolicyReference{Name: "hr-import"},
				Collection: "people.csv", KeyFields: []string{"id"}, Identity: syncv1alpha1.MemberIdentityFields{Email: "email"}},
		},
	}
}

func rows(n int) []member {
	var out []member
	for i := range n {
		out = append(out, member{origin: sourceOrigin, Member: members.Member{Key: fmt.Sprintf("row:E%d", i), Email: fmt.Sprintf("p%d@example.com", i)}})
	}
	return out
}

// enrolled is what the API server holds after the plan's writes: the users the plan applied.
func enrolled(plan enrolmentPlan) []syncv1alpha1.SyncUser {
	var out []syncv1alpha1.SyncUser
	for _, u := range plan.apply {
		u := u.DeepCopy()
		u.ResourceVersion = "1"
		out = append(out, *u)
	}
	return out
}

var allComplete = map[string]bool{listOrigin: true, selectorOrigin: true, sourceOrigin: true}

func TestEnrolmentMakesOneOwnedUserPerMemberAndNothingMoreOnTheNextPass(t *testing.T) {
	g := NewWithT(t)
	e := hrEnrolment()
	plan := planEnrolment(e, rows(3), nil, nil, allComplete, fx.T0)
	g.Expect(plan.apply).To(HaveLen(3))
	g.Expect(plan.members).To(Equal(3))
	g.Expect(plan.managed).To(Equal(3))
	u := plan.apply[0]
	g.Expect(u.Name).To(MatchRegexp(`^hr-p0-[0-9a-f]{8}$`))
	g.Expect(u.Spec.Identity.Email).To(Equal("p0@example.com"))
	g.Expect(u.Spec.ChainRef.Name).To(Equal("onboarding"))
	g.Expect(u.Spec.RecordsOnDelete).To(Equal(syncv1alpha1.RetainRecords))
	g.Expect(u.Labels).To(HaveKeyWithValue(syncv1alpha1.EnrolmentLabel, "hr"))
	g.Expect(u.Annotations).To(HaveKeyWithValue(argoCompareOptionsAnnotation, "IgnoreExtraneous"))
	g.Expect(metav1.IsControlledBy(u, e)).To(BeTrue())

	again := planEnrolment(e, rows(3), enrolled(plan), nil, allComplete, fx.T0)
	g.Expect(again.apply).To(BeEmpty(), "users already as they must be are not written again")
	g.Expect(again.remove).To(BeEmpty())
	g.Expect(again.managed).To(Equal(3))
}

func TestARenamedMemberKeepsItsUserAndAnotherKeepsAPersonsAnnotations(t *testing.T) {
	g := NewWithT(t)
	e := hrEnrolment()
	users := enrolled(planEnrolment(e, rows(2), nil, nil, allComplete, fx.T0))
	users[1].Annotations[syncv1alpha1.RequestedAtAnnotation] = "now"

	renamed := rows(2)
	renamed[0].Email = "p0.new@example.com"
	renamed[1].Email = "P1@EXAMPLE.com"
	plan := planEnrolment(e, renamed, users, nil, allComplete, fx.T0)
	g.Expect(plan.apply).To(HaveLen(2))
	g.Expect(plan.apply[0].Name).To(Equal(users[0].Name), "the key names the user, not the email")
	g.Expect(plan.apply[0].ResourceVersion).To(Equal("1"), "an update, not a create")
	g.Expect(plan.apply[0].Spec.Identity.Email).To(Equal("p0.new@example.com"))
	g.Expect(plan.apply[1].Annotations).To(HaveKeyWithValue(syncv1alpha1.RequestedAtAnnotation, "now"))
	g.Expect(plan.remove).To(BeEmpty())
}

func TestMembersThatCannotBeEnrolledAreSkippedWithTheirReason(t *testing.T) {
	g := NewWithT(t)
	e := hrEnrolment()
	found := []member{
		{origin: sourceOrigin, Member: members.Member{Key: "row:1", Email: "not-an-address"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:2"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:3", Email: "dup@example.com"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:4", Email: "DUP@example.com"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:5", Email: "placed@example.com"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:6", Email: "taken@example.com"}},
		{origin: sourceOrigin, Member: members.Member{Key: "row:7", Email: "ok@example.com", Attributes: map[string]string{"bad key!": "x"}}},
	}
	others := []syncv1alpha1.SyncUser{
		{ObjectMeta: metav1.ObjectMeta{Name: "by-hand"}, Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "Placed@Example.com"}, ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: generatedUserName("hr", found[5].Member)}, Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "someone@example.com"}, PolicyRef: &syncv1alpha1.PolicyReference{Name: "other"}}},
	}
	plan := planEnrolment(e, found, nil, others, allComplete, fx.T0)
	g.Expect(plan.apply).To(HaveLen(1))
	g.Expect(plan.apply[0].Spec.Identity.Email).To(Equal("dup@example.com"), "the first of two members with one identity")
	g.Expect(plan.skippedCount).To(Equal(6))
	reasons := map[string]syncv1alpha1.MemberSkipReason{}
	for _, s := range plan.skipped {
		reasons[s.Member] = s.Reason
	}
	g.Expect(reasons).To(Equal(map[string]syncv1alpha1.MemberSkipReason{
		"not-an-address": syncv1alpha1.MemberInvalidIdentity, "2": syncv1alpha1.MemberInvalidIdentity,
		"DUP@example.com": syncv1alpha1.MemberDuplicateIdentity, "placed@example.com": syncv1alpha1.MemberAlreadyPlaced,
		"taken@example.com": syncv1alpha1.MemberNameTaken, "ok@example.com": syncv1alpha1.MemberInvalidIdentity,
	}))
}

func TestMembersWhoLeaveAreSuspendedWithinTheThresholdAndHeldBeyondIt(t *testing.T) {
	e := hrEnrolment()
	users := enrolled(planEnrolment(e, rows(50), nil, nil, allComplete, fx.T0))

	t.Run("one of fifty leaves: suspended, kept", func(t *testing.T) {
		g := NewWithT(t)
		plan := planEnrolment(e, rows(50)[1:], users, nil, allComplete, fx.T0)
		g.Expect(plan.remove).To(HaveLen(1))
		g.Expect(plan.remove[0].Name).To(Equal(users[0].Name))
		g.Expect(plan.remove[0].Spec.Suspend).To(BeTrue())
		g.Expect(plan.remove[0].Annotations).To(HaveKey(memberLeftAnnotation))
		g.Expect(plan.managed).To(Equal(50))
		g.Expect(plan.suspended).To(Equal(1))

		// Next pass: already suspended, nothing more; when the member is back, resumed.
		after := append([]syncv1alpha1.SyncUser{*plan.remove[0]}, users[1:]...)
		g.Expect(planEnrolment(e, rows(50)[1:], after, nil, allComplete, fx.T0).remove).To(BeEmpty())
		back := planEnrolment(e, rows(50), after, nil, allComplete, fx.T0)
		g.Expect(back.apply).To(HaveLen(1))
		g.Expect(back.apply[0].Spec.Suspend).To(BeFalse())
		g.Expect(back.apply[0].Annotations).NotTo(HaveKey(memberLeftAnnotation))
		g.Expect(back.suspended).To(Equal(0))
	})
	t.Run("an empty export removes nobody without approval", func(t *testing.T) {
		g := NewWithT(t)
		plan := planEnrolment(e, nil, users, nil, allComplete, fx.T0)
		g.Expect(plan.remove).To(BeEmpty())
		g.Expect(plan.held).To(HaveLen(50))
		g.Expect(plan.heldID).NotTo(BeEmpty())

		approved := e.DeepCopy()
		approved.Annotations = map[string]string{syncv1alpha1.ApproveRemovalsAnnotation: plan.heldID}
		g.Expect(planEnrolment(approved, nil, users, nil, allComplete, fx.T0).remove).To(HaveLen(50))
		g.Expect(planEnrolment(approved, rows(1), users, nil, allComplete, fx.T0).remove).To(BeEmpty(),
			"an approval is for the set it names, not another")
	})
	t.Run("a source not read in full removes nobody", func(t *testing.T) {
		g := NewWithT(t)
		plan := planEnrolment(e, rows(50)[1:], users, nil, map[string]bool{listOrigin: true}, fx.T0)
		g.Expect(plan.remove).To(BeEmpty())
		g.Expect(plan.held).To(BeEmpty())
	})
	t.Run("the Delete action deletes within the threshold", func(t *testing.T) {
		g := NewWithT(t)
		del := e.DeepCopy()
		del.Spec.Removals = syncv1alpha1.EnrolmentRemovals{Action: syncv1alpha1.DeleteRemoved, MaxCount: ptr.To[int32](5), MaxPercent: ptr.To[int32](100)}
		plan := planEnrolment(del, rows(50)[5:], users, nil, allComplete, fx.T0)
		g.Expect(plan.remove).To(HaveLen(5))
		g.Expect(plan.managed).To(Equal(45))
		g.Expect(planEnrolment(del, rows(50)[6:], users, nil, allComplete, fx.T0).held).To(HaveLen(6))
	})
}

func TestSelectorEnrolsOtherUsersIdentitiesButNeverItsOwn(t *testing.T) {
	g := NewWithT(t)
	e := hrEnrolment()
	e.Spec.Source = nil
	e.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"dept": "sales"}}
	e.Spec.Users = []syncv1alpha1.UserIdentity{{Email: "listed@example.com"}}
	others := []syncv1alpha1.SyncUser{
		{ObjectMeta: metav1.ObjectMeta{Name: "ann", Labels: map[string]string{"dept": "sales"}},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "ann@example.com"}, PolicyRef: &syncv1alpha1.PolicyReference{Name: "crm"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bob", Labels: map[string]string{"dept": "it"}},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "bob@example.com"}, PolicyRef: &syncv1alpha1.PolicyReference{Name: "crm"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "mine", Labels: map[string]string{"dept": "sales", syncv1alpha1.EnrolmentLabel: "hr"}},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "mine@example.com"}, ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}}},
	}
	found, err := gatherMembers(e, others, nil)
	g.Expect(err).NotTo(HaveOccurred())
	var emails []string
	for _, m := range found {
		emails = append(emails, m.Email)
	}
	g.Expect(emails).To(Equal([]string{"listed@example.com", "ann@example.com"}))
}

func TestEnrolmentConditions(t *testing.T) {
	cases := []struct {
		name          string
		plan          enrolmentPlan
		reason, issue string
		wantReady     metav1.ConditionStatus
		wantReason    string
		wantStalled   bool
		wantReconcile bool
	}{
		{"all enrolled", enrolmentPlan{members: 3, managed: 3}, "", "", metav1.ConditionTrue, syncv1alpha1.SyncEnrolmentReadyReason, false, false},
		{"removals held", enrolmentPlan{held: []string{"a"}, heldID: "x"}, "", "", metav1.ConditionFalse, syncv1alpha1.SyncEnrolmentRemovalsHeldReason, true, false},
		{"policy missing", enrolmentPlan{}, syncv1alpha1.SyncEnrolmentPolicyNotFoundReason, "gone", metav1.ConditionFalse, syncv1alpha1.SyncEnrolmentPolicyNotFoundReason, true, false},
		{"first read", enrolmentPlan{}, syncv1alpha1.SyncEnrolmentReadingReason, "reading", metav1.ConditionFalse, syncv1alpha1.SyncEnrolmentReadingReason, false, true},
		{"read failed", enrolmentPlan{}, syncv1alpha1.SyncEnrolmentSourceFailedReason, "boom", metav1.ConditionFalse, syncv1alpha1.SyncEnrolmentSourceFailedReason, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			e := hrEnrolment()
			setEnrolmentStatus(e, c.plan, c.reason, c.issue)
			ready := meta.FindStatusCondition(e.Status.Conditions, syncv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(c.wantReady))
			g.Expect(ready.Reason).To(Equal(c.wantReason))
			g.Expect(meta.IsStatusConditionTrue(e.Status.Conditions, syncv1alpha1.StalledCondition)).To(Equal(c.wantStalled))
			g.Expect(meta.IsStatusConditionTrue(e.Status.Conditions, syncv1alpha1.ReconcilingCondition)).To(Equal(c.wantReconcile))
		})
	}
	g := NewWithT(t)
	e := hrEnrolment()
	setEnrolmentStatus(e, enrolmentPlan{held: []string{"a", "b"}, heldID: "abc123"}, "", "")
	g.Expect(meta.FindStatusCondition(e.Status.Conditions, syncv1alpha1.ReadyCondition).Message).To(ContainSubstring("sync.chainsync.dev/approve-removals=abc123"))
	g.Expect(e.Status.PendingRemovalsID).To(Equal("abc123"))
}

func TestGeneratedNamesAreStableDistinctAndValid(t *testing.T) {
	g := NewWithT(t)
	seen := map[string]string{}
	for _, m := range []members.Member{
		{Key: "row:E1", Email: "a@x.org"}, {Key: "row:e1", Email: "a@x.org"}, {Key: "row:a.b", Name: "a.b"}, {Key: "row:a-b", Name: "a-b"},
		{Key: "list:email:ada.lovelace@example.com", Email: "Ada.Lovelace@Example.com"}, {Key: "user:bob", Name: "---"},
		{Key: "row:" + strings.Repeat("x", 300), Email: strings.Repeat("é", 100) + "@example.com"},
	} {
		name := generatedUserName("a-rather-long-enrolment-name", m)
		g.Expect(name).To(MatchRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`))
		g.Expect(len(name)).To(BeNumerically("<=", 63))
		g.Expect(seen).NotTo(HaveKey(name), "keys %q and %q", seen[name], m.Key)
		seen[name] = m.Key
		g.Expect(generatedUserName("a-rather-long-enrolment-name", m)).To(Equal(name))
	}
	g.Expect(generatedUserName("hr", members.Member{Key: "row:1815", Email: "Ada.Lovelace@Example.com"})).To(MatchRegexp(`^hr-ada-lovelace-[0-9a-f]{8}$`))
}
