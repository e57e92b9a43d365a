package connector

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// The same data read from a csv file and from an SQL column must have the
// same canonical text, or every cycle would see a false change.
func TestValuesFromDifferentSystemsAgree(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Int(42).Text).To(Equal(String("42").Text))
	g.Expect(Float(42).Text).To(Equal(Int(42).Text))
	g.Expect(Float(-0.0).Text).To(Equal(Int(0).Text))
	g.Expect(Float(1 << 53).Text).To(Equal(Int(1 << 53).Text))
	g.Expect(Float(0.1).Text).To(Equal("0.1"))

	paris := time.FixedZone("CET", 3600)
	instant := time.Date(2024, 3, 1, 10, 0, 0, 500, time.UTC)
	g.Expect(Time(instant.In(paris))).To(Equal(Time(instant)))

	back, err := Time(instant).AsTime()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back.Equal(instant)).To(BeTrue())

	g.Expect(Null()).NotTo(Equal(String("")))
}

func TestEndpointFailureIsAnythingButAnItemError(t *testing.T) {
	g := NewWithT(t)
	g.Expect(IsEndpointFailure(nil)).To(BeFalse())
	g.Expect(IsEndpointFailure(unreachable{})).To(BeTrue())
	wrapped := error(NewItemError("7", ErrNotFound))
	g.Expect(IsEndpointFailure(wrapped)).To(BeFalse())
	g.Expect(IsItemError(wrapped)).To(BeTrue())
}

type unreachable struct{}

func (unreachable) Error() string { return "deadline exceeded" }
