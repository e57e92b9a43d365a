package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
	"github.com/chainsync/chainsync/internal/members"
)

// memberLeftAnnotation on a generated SyncUser says when its member left every source and the
// enrolment suspended it; a member that comes back finds its user resumed, while a user a person
// suspended stays suspended.
const memberLeftAnnotation = "sync.chainsync.dev/member-left"

// Generated SyncUsers carry this for Argo CD: they are not in Git, and not the application's to
// report as extraneous or to prune.
const argoCompareOptionsAnnotation = "argocd.argoproj.io/compare-options"

// Where a member came from, as the prefix of its key: a member keeps its user only while it
// comes from the same place, and a source not read this time removes none of its own.
const (
	listOrigin     = "list:"
	selectorOrigin = "user:"
	sourceOrigin   = "row:"
)

// member is one would-be user, from any of the enrolment's three places.
type member struct {
	members.Member
	origin string
}

// identityKey is what makes two placements of a user the same: its email (without case), or
// its name when it has no email.
func identityKey(email, name string) string {
	if email != "" {
		return "email:" + strings.ToLower(email)
	}
	return "name:" + name
}

// gatherMembers lists the members of the spec's users, the SyncUsers its selector matches (never
// this enrolment's own), and the source's last read (nil while there is none), in that order.
func gatherMembers(enrolment *syncv1alpha1.SyncEnrolment, users []syncv1alpha1.SyncUser, read *members.List) ([]member, error) {
	var out []member
	for _, u := range enrolment.Spec.Users {
		out = append(out, member{origin: listOrigin, Member: members.Member{
			Key: listOrigin + identityKey(u.Email, u.Name), Email: u.Email, Name: u.Name, Attributes: u.Attributes}})
	}
	if sel := enrolment.Spec.Selector; sel != nil {
		selector, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, fmt.Errorf("spec.selector: %w", err)
		}
		for i := range users {
			u := &users[i]
			if u.Labels[syncv1alpha1.EnrolmentLabel] == enrolment.Name || !selector.Matches(labels.Set(u.Labels)) {
				continue
			}
			id := u.Spec.Identity
			out = append(out, member{origin: selectorOrigin, Member: members.Member{
				Key: selectorOrigin + u.Name, Email: id.Email, Name: id.Name, Attributes: id.Attributes}})
		}
	}
	if read != nil {
		for _, m := range read.Members {
			m.Key = sourceOrigin + m.Key
			out = append(out, member{origin: sourceOrigin, Member: m})
		}
	}
	return out, nil
}

// enrolmentPlan is what one reconcile does to the users of an enrolment.
type enrolmentPlan struct {
	// apply are the generated users to create or change, as they must be.
	apply []*syncv1alpha1.SyncUser
	// remove are the generated users whose members left, to suspend or delete now.
	remove []*syncv1alpha1.SyncUser
	// held are those the removal threshold holds back, and heldID names them for approval.
	held   []string
	heldID string

	members, managed, suspended, skippedCount int
	skipped                                   []syncv1alpha1.SkippedMember
}

// planEnrolment compares the members with the users the enrolment made (owned) and every other
// SyncUser of the namespace (others). complete says, per origin, whether its members are all
// known: a source not read yet, or whose read failed or missed rows, removes nobody.
func planEnrolment(enrolment *syncv1alpha1.SyncEnrolment, found []member, owned, others []syncv1alpha1.SyncUser,
	complete map[string]bool, now time.Time) enrolmentPlan {
	var plan enrolmentPlan
	ownedByName := map[string]*syncv1alpha1.SyncUser{}
	ownedByKey := map[string]*syncv1alpha1.SyncUser{}
	for i := range owned {
		ownedByName[owned[i].Name] = &owned[i]
		ownedByKey[owned[i].Annotations[syncv1alpha1.MemberKeyAnnotation]] = &owned[i]
	}
	otherNames := map[string]bool{}
	placedElsewhere := map[string]string{}
	for i := range others {
		u := &others[i]
		otherNames[u.Name] = true
		if samePlacement(u.Spec, enrolment.Spec) {
			placedElsewhere[identityKey(u.Spec.Identity.Email, u.Spec.Identity.Name)] = u.Name
		}
	}

	seenIdentity := map[string]string{}
	wanted := map[string]bool{}
	for _, m := range found {
		if problem := invalidIdentity(m.Member); problem != "" {
			plan.skip(m, syncv1alpha1.MemberInvalidIdentity, problem)
			continue
		}
		id := identityKey(m.Email, m.Name)
		if first, dup := seenIdentity[id]; dup {
			if first != m.Key {
				plan.skip(m, syncv1alpha1.MemberDuplicateIdentity, "the same identity as member "+strings.SplitN(first, ":", 2)[1])
			}
			continue
		}
		seenIdentity[id] = m.Key
		if other, ok := placedElsewhere[id]; ok {
			plan.skip(m, syncv1alpha1.MemberAlreadyPlaced, fmt.Sprintf("SyncUser %s already places this identity there", other))
			continue
		}
		// A member keeps the user made for it, whatever its identity became since.
		name := generatedUserName(enrolment.Name, m.Member)
		if u, ok := ownedByKey[m.Key]; ok {
			name = u.Name
		}
		if otherNames[name] {
			plan.skip(m, syncv1alpha1.MemberNameTaken, fmt.Sprintf("SyncUser %s exists and was not made by this enrolment", name))
			continue
		}
		wanted[name] = true
		plan.members++
		desired := desiredUser(enrolment, m, name, ownedByName[name])
		if existing := ownedByName[name]; existing == nil || !sameGenerated(existing, desired) {
			plan.apply = append(plan.apply, desired)
		}
	}

	// Users already removed whose members are still gone count in the set an approval names,
	// so that removals cut short (an API error half-way) go on under the same approval; only
	// the users still to remove count against the threshold.
	var leaving []*syncv1alpha1.SyncUser
	var names []string
	for i := range owned {
		u := &owned[i]
		if wanted[u.Name] {
			continue
		}
		origin, _, _ := strings.Cut(u.Annotations[syncv1alpha1.MemberKeyAnnotation], ":")
		if !complete[origin+":"] {
			continue // Not known to have left: its source was not read in full.
		}
		names = append(names, u.Name)
		removed := !u.DeletionTimestamp.IsZero() ||
			enrolment.Spec.Removals.Action != syncv1alpha1.DeleteRemoved && u.Annotations[memberLeftAnnotation] != ""
		if !removed {
			leaving = append(leaving, u)
		}
	}
	if len(leaving) > 0 {
		slices.Sort(names)
		id := removalsID(names)
		if removalsWithinThreshold(enrolment.Spec.Removals, len(leaving), len(owned)) ||
			enrolment.Annotations[syncv1alpha1.ApproveRemovalsAnnotation] == id {
			for _, u := range leaving {
				plan.remove = append(plan.remove, removedUser(enrolment, u, now))
			}
		} else {
			for _, u := range leaving {
				plan.held = append(plan.held, u.Name)
			}
			plan.heldID = id
		}
	}
	plan.managed, plan.suspended = countAfter(owned, plan, enrolment.Spec.Removals.Action)
	return plan
}

// countAfter counts the users as they will be once the plan is applied: those not being
// deleted, and among them those suspended because their member left.
func countAfter(owned []syncv1alpha1.SyncUser, plan enrolmentPlan, action syncv1alpha1.RemovalAction) (managed, suspended int) {
	after := make(map[string]*syncv1alpha1.SyncUser, len(owned)+len(plan.apply))
	for i := range owned {
		after[owned[i].Name] = &owned[i]
	}
	for _, u := range plan.apply {
		after[u.Name] = u
	}
	for _, u := range plan.remove {
		if action == syncv1alpha1.DeleteRemoved {
			delete(after, u.Name)
		} else {
			after[u.Name] = u
		}
	}
	for _, u := range after {
		if u.DeletionTimestamp.IsZero() {
			managed++
			if u.Annotations[memberLeftAnnotation] != "" {
				suspended++
			}
		}
	}
	return managed, suspended
}

func (p *enrolmentPlan) skip(m member, reason syncv1alpha1.MemberSkipReason, message string) {
	if len(p.skipped) < 10 {
		name := m.Email
		if name == "" {
			name = m.Name
		}
		if name == "" {
			name = strings.SplitN(m.Key, ":", 2)[1]
		}
		p.skipped = append(p.skipped, syncv1alpha1.SkippedMember{Member: shortenTo(name, 256), Reason: reason, Message: shortenTo(message, 512)})
	}
	p.skippedCount++
}

// samePlacement says whether a user's spec places it where the enrolment places its users.
func samePlacement(user syncv1alpha1.SyncUserSpec, enrolment syncv1alpha1.SyncEnrolmentSpec) bool {
	switch {
	case enrolment.ChainRef != nil:
		return user.ChainRef != nil && user.ChainRef.Name == enrolment.ChainRef.Name
	case enrolment.PolicyRef != nil:
		return user.PolicyRef != nil && user.PolicyRef.Name == enrolment.PolicyRef.Name
	}
	return false
}

// The rules admission applies to a SyncUser's identity, checked here so that one bad row is one
// skipped member, not a refused write.
var (
	emailPattern     = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)
	attributePattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

func invalidIdentity(m members.Member) string {
	switch {
	case m.Email == "" && m.Name == "":
		return "no email and no name"
	case m.Email != "" && (len(m.Email) > 254 || !emailPattern.MatchString(m.Email)):
		return fmt.Sprintf("%q is not an email address", shortenTo(m.Email, 300))
	case len(m.Name) > 253:
		return "the name is longer than 253 characters"
	case len(m.Attributes) > 32:
		return "more than 32 attributes"
	}
	for k, v := range m.Attributes {
		if len(k) > 63 || !attributePattern.MatchString(k) || len(v) > 1024 {
			return fmt.Sprintf("attribute %q: names are at most 63 letters, digits, '-', '_' or '.', values at most 1024 characters", shortenTo(k, 80))
		}
	}
	return ""
}

// generatedUserName names a new member's SyncUser after the enrolment and the member's email
// (its local part) or name, as people read them in kubectl get, ending with a hash of the
// member's key: folding "E1" and "e1", or "a.b" and "a-b", into a DNS name would make two
// members one. Short, because Job annotations list users by name. The name stays when the
// member is renamed: users are found by their member key.
func generatedUserName(enrolment string, m members.Member) string {
	readable, _, _ := strings.Cut(m.Email, "@")
	if readable == "" {
		readable = m.Name
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(readable) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	part := strings.Trim(truncate(strings.Trim(b.String(), "-"), 30), "-")
	sum := sha256.Sum256([]byte(m.Key))
	name := truncate(enrolment, 20)
	if part != "" {
		name += "-" + part
	}
	return name + "-" + hex.EncodeToString(sum[:])[:8]
}

// desiredUser is the SyncUser a member must have: the existing one changed as little as needed
// (annotations and labels of others, a webhook's request say, are kept), or a new one. What a
// person may change on it (suspend) is kept, but for a user the enrolment suspended itself when
// the member left: it is back.
func desiredUser(enrolment *syncv1alpha1.SyncEnrolment, m member, name string, existing *syncv1alpha1.SyncUser) *syncv1alpha1.SyncUser {
	u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: enrolment.Namespace}}
	if existing != nil {
		u = existing.DeepCopy()
		u.Spec.Suspend = existing.Spec.Suspend && existing.Annotations[memberLeftAnnotation] == ""
	}
	u.Labels = maps.Clone(u.Labels)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	u.Labels[syncv1alpha1.EnrolmentLabel] = enrolment.Name
	u.Labels[ManagedByLabel] = managedBy
	u.Annotations = maps.Clone(u.Annotations)
	if u.Annotations == nil {
		u.Annotations = map[string]string{}
	}
	u.Annotations[syncv1alpha1.MemberKeyAnnotation] = m.Key
	u.Annotations[argoCompareOptionsAnnotation] = "IgnoreExtraneous"
	delete(u.Annotations, memberLeftAnnotation)
	u.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(enrolment, syncv1alpha1.GroupVersion.WithKind("SyncEnrolment"))}
	u.Spec.Identity = syncv1alpha1.UserIdentity{Email: m.Email, Name: m.Name, Attributes: m.Attributes}
	u.Spec.PolicyRef, u.Spec.ChainRef = enrolment.Spec.PolicyRef, enrolment.Spec.ChainRef
	u.Spec.RecordsOnDelete = enrolment.Spec.RecordsOnDelete
	if u.Spec.RecordsOnDelete == "" {
		u.Spec.RecordsOnDelete = syncv1alpha1.RetainRecords
	}
	return u
}

// sameGenerated says whether the user already is as the enrolment wants it.
func sameGenerated(existing, desired *syncv1alpha1.SyncUser) bool {
	norm := func(u *syncv1alpha1.SyncUser) (metav1.ObjectMeta, syncv1alpha1.SyncUserSpec) {
		m := metav1.ObjectMeta{Labels: u.Labels, Annotations: u.Annotations, OwnerReferences: u.OwnerReferences}
		spec := u.Spec
		if len(spec.Identity.Attributes) == 0 {
			spec.Identity.Attributes = nil
		}
		return m, spec
	}
	em, es := norm(existing)
	dm, ds := norm(desired)
	return equality.Semantic.DeepEqual(em, dm) && equality.Semantic.DeepEqual(es, ds)
}

// removedUser is a generated user whose member left, as the removal action makes it.
func removedUser(enrolment *syncv1alpha1.SyncEnrolment, u *syncv1alpha1.SyncUser, now time.Time) *syncv1alpha1.SyncUser {
	out := u.DeepCopy()
	if enrolment.Spec.Removals.Action == syncv1alpha1.DeleteRemoved {
		return out
	}
	out.Annotations = maps.Clone(out.Annotations)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[memberLeftAnnotation] = now.UTC().Format(time.RFC3339)
	out.Spec.Suspend = true
	return out
}

// removalsWithinThreshold says whether n removals out of managed users may go ahead unapproved.
func removalsWithinThreshold(r syncv1alpha1.EnrolmentRemovals, n, managed int) bool {
	maxCount, maxPercent := int32(10), int32(10)
	if r.MaxCount != nil {
		maxCount = *r.MaxCount
	}
	if r.MaxPercent != nil {
		maxPercent = *r.MaxPercent
	}
	return n <= int(maxCount) && n*100 <= int(maxPercent)*max(managed, 1)
}

// removalsID names a set of held removals: approving one set never approves another.
func removalsID(names []string) string {
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// setEnrolmentStatus writes the plan's counts and the conditions they lead to. sourceProblem is
// why the source's members are not all known (its read failed, its policy is missing), if so.
func setEnrolmentStatus(enrolment *syncv1alpha1.SyncEnrolment, plan enrolmentPlan, sourceReason, sourceProblem string) {
	st := &enrolment.Status
	st.Members, st.Managed, st.Suspended = int32(plan.members), int32(plan.managed), int32(plan.suspended)
	st.Skipped, st.SkippedMembers = int32(plan.skippedCount), plan.skipped
	st.PendingRemovals, st.PendingRemovalsID = int32(len(plan.held)), plan.heldID
	gen := enrolment.Generation
	switch {
	case len(plan.held) > 0:
		kstatus.MarkStalled(&st.Conditions, gen, syncv1alpha1.SyncEnrolmentRemovalsHeldReason, fmt.Sprintf(
			"%d users' members left, more than spec.removals allows at once; set annotation %s=%s to remove them",
			len(plan.held), syncv1alpha1.ApproveRemovalsAnnotation, plan.heldID))
	case sourceProblem != "" && sourceReason == syncv1alpha1.SyncEnrolmentPolicyNotFoundReason:
		kstatus.MarkStalled(&st.Conditions, gen, sourceReason, sourceProblem)
	case sourceReason == syncv1alpha1.SyncEnrolmentReadingReason:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		for _, t := range []string{syncv1alpha1.ReconcilingCondition, syncv1alpha1.ReadyCondition} {
			status := metav1.ConditionTrue
			if t == syncv1alpha1.ReadyCondition {
				status = metav1.ConditionFalse
			}
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: sourceReason,
				Message: sourceProblem, ObservedGeneration: gen})
		}
	case sourceProblem != "":
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionFalse,
			Reason: sourceReason, Message: sourceProblem, ObservedGeneration: gen})
	default:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		msg := fmt.Sprintf("%d members, %d users", plan.members, plan.managed)
		if plan.skippedCount > 0 {
			msg += fmt.Sprintf(", %d skipped", plan.skippedCount)
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
			Reason: syncv1alpha1.SyncEnrolmentReadyReason, Message: msg, ObservedGeneration: gen})
	}
}

// shortenTo cuts s to at most n bytes, on a rune boundary.
func shortenTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
