package jobargs

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestCycleArgsParseBackToTheSameValue(t *testing.T) {
	full := Cycle{
		Namespace: "team-a", Policy: "hr-import", Job: "hr-import-0123456789",
		Store: "/chainsync/volumes/records/chainsync", Volumes: "/v", Secrets: "/s",
		AllowedDestinations: []string{"db.example:5432", "crm.example:443"},
		Concurrency:         3, Shards: 2, LockTimeout: 5 * time.Second,
		Users: []string{"ada", "bob", "--not-a-flag"},
	}
	cases := []struct {
		name string
		args Cycle
	}{
		{"every field", full},
		{"no destinations and no users", Cycle{Namespace: "n", Policy: "p", Job: "j", Store: "/st", Volumes: VolumesRoot,
			Secrets: SecretsRoot, Concurrency: 1, Shards: 1, LockTimeout: time.Minute}},
		{"a user named like a flag after --", Cycle{Namespace: "n", Policy: "p", Job: "j", Store: "/st", Volumes: "/v",
			Secrets: "/s", Concurrency: 1, Shards: 1, LockTimeout: time.Second, Users: []string{"--shards", "9"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseCycle(c.args.Args())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(c.args))
		})
	}
}

func TestCycleFlagsLeftOutTakeTheirDefaults(t *testing.T) {
	g := NewWithT(t)
	a := Cycle{Namespace: "n", Policy: "p", Job: "j", Store: "/st", Volumes: VolumesRoot, Secrets: SecretsRoot,
		Concurrency: 1, Shards: 1, Users: []string{"ada"}}
	got, err := ParseCycle(a.Args())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.LockTimeout).To(Equal(DefaultLockTimeout), "a zero lock timeout is the command's default")

	got, err = ParseCycle([]string{"cycle", "--namespace", "n", "--policy", "p", "--job", "j", "--store", "/st", "ada"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(Cycle{Namespace: "n", Policy: "p", Job: "j", Store: "/st", Volumes: VolumesRoot, Secrets: SecretsRoot,
		Concurrency: DefaultConcurrency, Shards: 1, LockTimeout: DefaultLockTimeout, Users: []string{"ada"}}))
}

func TestCycleRefusesMissingFlags(t *testing.T) {
	g := NewWithT(t)
	_, err := ParseCycle([]string{"cycle", "--namespace", "n", "--", "ada"})
	g.Expect(err).To(MatchError("required flags not set: --policy, --job, --store"))
	_, err = ParseCycle([]string{"cycle", "--namespace", "n", "--policy", "p", "--job", "j", "--store", "/st", "--shards", "0"})
	g.Expect(err).To(MatchError(ContainSubstring("--shards must be at least 1")))
	_, err = ParseCycle(ForgetRecords{Namespace: "n", Store: "/st"}.Args())
	g.Expect(err).To(MatchError(ContainSubstring("not a cycle command line")))
}

func TestForgetRecordsArgsParseBackToTheSameValue(t *testing.T) {
	cases := []struct {
		name string
		args ForgetRecords
	}{
		{"every field", ForgetRecords{Namespace: "team-a", Job: "ada-forget-1234", Store: "/chainsync/volumes/records",
			LockTimeout: 5 * time.Second, Users: []string{"ada"}}},
		{"no job name", ForgetRecords{Namespace: "n", Store: "/st", LockTimeout: time.Minute, Users: []string{"ada", "bob"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseForgetRecords(c.args.Args())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(c.args))
		})
	}
	g := NewWithT(t)
	_, err := ParseForgetRecords([]string{"forget-records", "--job", "j", "--", "ada"})
	g.Expect(err).To(MatchError("required flags not set: --namespace, --store"))
}

func TestThePodsLayoutIsOneClaimOrSecretPerDirectory(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ClaimPath(VolumesRoot, "hr-exports", "exports/latest")).To(Equal("/chainsync/volumes/hr-exports/exports/latest"))
	g.Expect(ClaimPath(VolumesRoot, "records", "")).To(Equal("/chainsync/volumes/records"))
	g.Expect(SecretPath(SecretsRoot, "crm-db", "password")).To(Equal("/chainsync/secrets/crm-db/password"))
}

func TestReadMembersArgsParseBackToTheSameValue(t *testing.T) {
	g := NewWithT(t)
	a := ReadMembers{Namespace: "team-a", Enrolment: "new-hires", Job: "new-hires-members-0123abcd", SourceHash: "9f8e",
		Volumes: "/v", Secrets: "/s", AllowedDestinations: []string{"db.example:5432"}}
	got, err := ParseReadMembers(a.Args())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(a))

	_, err = ParseReadMembers([]string{"read-members", "--namespace", "n"})
	g.Expect(err).To(MatchError("required flags not set: --enrolment, --job"))
	_, err = ParseReadMembers(append(a.Args(), "ada"))
	g.Expect(err).To(MatchError(ContainSubstring("takes no arguments")))
}
