package cli

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
)

func TestEachPodTakesItsShareOfUsersOnce(t *testing.T) {
	g := NewWithT(t)
	var users []string
	for i := range 10 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	seen := map[string]int{}
	for i := range 3 {
		mine, err := shareOf(users, 3, fmt.Sprint(i))
		g.Expect(err).NotTo(HaveOccurred())
		for _, u := range mine {
			seen[u]++
		}
	}
	g.Expect(seen).To(HaveLen(10))
	for u, n := range seen {
		g.Expect(n).To(Equal(1), u)
	}
	first, _ := shareOf(users, 3, "0")
	g.Expect(first).To(Equal([]string{"u0", "u3", "u6", "u9"}))

	all, err := shareOf(users, 1, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(all).To(Equal(users), "a single pod takes everyone")

	_, err = shareOf(users, 3, "3")
	g.Expect(err).To(MatchError(ContainSubstring(`JOB_COMPLETION_INDEX "3" is not an index below --shards 3`)))
}
