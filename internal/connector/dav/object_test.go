package dav

import (
	"maps"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
)

const card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann-1\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\n" +
	"EMAIL;TYPE=home:ann@home.example\r\nEMAIL;TYPE=work,internet:ann@work.example\r\n" +
	"TEL;TYPE=cell:+1 555 0100\r\nORG:Example Corp;Sales\r\nNOTE:Line one\\nline two\\, with a comma\r\n" +
	"PHOTO;ENCODING=b;TYPE=JPEG:AAEC\r\nREV:2026-03-01T09:30:00Z\r\nEND:VCARD\r\n"

func TestVCardPropertiesByPath(t *testing.T) {
	obj, err := parseVCard([]byte(card))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		want  connector.Value
	}{
		{"FN", connector.String("Ann Example")},
		{"fn", connector.String("Ann Example")},
		{"EMAIL;TYPE=work", connector.String("ann@work.example")},
		{"EMAIL;TYPE=WORK", connector.String("ann@work.example")},
		{"EMAIL;TYPE=internet", connector.String("ann@work.example")},
		{"EMAIL;TYPE=home", connector.String("ann@home.example")},
		{"EMAIL", connector.String("ann@home.example")},
		{"TEL;TYPE=cell", connector.String("+1 555 0100")},
		{"ORG", connector.String("Example Corp;Sales")},
		{"NOTE", connector.String("Line one\nline two, with a comma")},
		{"REV", connector.Time(time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC))},
	} {
		t.Run(tc.field, func(t *testing.T) {
			p, err := parseProp(tc.field)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := obj.get(p)
			NewWithT(t).Expect(ok).To(BeTrue())
			NewWithT(t).Expect(got).To(Equal(tc.want))
		})
	}
	p, _ := parseProp("EMAIL;TYPE=other")
	_, ok := obj.get(p)
	NewWithT(t).Expect(ok).To(BeFalse(), "no EMAIL has TYPE=other")
}

func TestVCardSetChangesOnlyTheMappedProperty(t *testing.T) {
	g := NewWithT(t)
	obj, err := parseVCard([]byte(card))
	g.Expect(err).NotTo(HaveOccurred())
	work, _ := parseProp("EMAIL;TYPE=work")
	cell, _ := parseProp("TEL;TYPE=cell")
	fax, _ := parseProp("TEL;TYPE=fax")
	g.Expect(obj.set(work, connector.String("ann@new.example"))).To(Succeed())
	g.Expect(obj.set(cell, connector.Null())).To(Succeed())
	g.Expect(obj.set(fax, connector.String("+1 555 0199"))).To(Succeed())
	out, err := obj.encode()
	g.Expect(err).NotTo(HaveOccurred())
	again, err := parseVCard(out)
	g.Expect(err).NotTo(HaveOccurred())
	all := again.all()
	g.Expect(all).To(HaveKeyWithValue("EMAIL;TYPE=work", connector.String("ann@new.example")))
	g.Expect(all).To(HaveKeyWithValue("EMAIL;TYPE=home", connector.String("ann@home.example")), "the other EMAIL is kept")
	g.Expect(all).To(HaveKeyWithValue("TEL;TYPE=fax", connector.String("+1 555 0199")), "a typed property missing is added with its TYPE")
	g.Expect(all).NotTo(HaveKey("TEL;TYPE=cell"))
	g.Expect(all).To(HaveKeyWithValue("PHOTO", connector.String("AAEC")), "unmapped properties are kept")
	g.Expect(all).To(HaveKeyWithValue("N", connector.String("Example;Ann;;;")))
	g.Expect(all).To(HaveKeyWithValue("NOTE", connector.String("Line one\nline two, with a comma")))
}

func TestAVCardThatDoesNotParseIsRefused(t *testing.T) {
	for name, text := range map[string]string{
		"a line without a colon": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN Ann\r\nEND:VCARD\r\n",
		"no END":                 "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Ann\r\n",
		"no VERSION":             "BEGIN:VCARD\r\nUID:x\r\nFN:Ann\r\nEND:VCARD\r\n",
		"not a vCard":            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseVCard([]byte(text))
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}

// recurring is a weekly meeting in Europe/Paris with one occurrence moved: two VEVENTs of one UID.
const recurring = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Paris:20260302T090000\r\n" +
	"DTEND;TZID=Europe/Paris:20260302T093000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:Standup\r\n" +
	"ATTENDEE;CN=Bob:mailto:bob@example.com\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Soon\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Paris:20260309T090000\r\n" +
	"DTSTART;TZID=Europe/Paris:20260309T100000\r\nDTEND;TZID=Europe/Paris:20260309T103000\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

func TestARecurringEventWithExceptionsIsOneItem(t *testing.T) {
	g := NewWithT(t)
	obj, err := parseICal([]byte(recurring), Events)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obj.uid()).To(Equal("weekly-1"))
	all := obj.all()
	g.Expect(all).To(HaveKeyWithValue("SUMMARY", connector.String("Standup")), "the fields are the master's")
	g.Expect(all).To(HaveKeyWithValue("RRULE", connector.String("FREQ=WEEKLY;BYDAY=MO")))
	g.Expect(all).To(HaveKeyWithValue("DTSTART", connector.Time(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))))

	// Moving the series an hour later keeps its time zone, the exception, the alarm and the attendee.
	g.Expect(obj.set(propPath{name: "DTSTART"}, connector.Time(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)))).To(Succeed())
	g.Expect(obj.set(propPath{name: "SUMMARY"}, connector.String("Standup, later"))).To(Succeed())
	out, err := obj.encode()
	g.Expect(err).NotTo(HaveOccurred())
	text := strings.ReplaceAll(string(out), "\r\n ", "")
	g.Expect(text).To(ContainSubstring("DTSTART;TZID=Europe/Paris:20260302T100000"))
	g.Expect(text).To(ContainSubstring("RECURRENCE-ID;TZID=Europe/Paris:20260309T090000"))
	g.Expect(text).To(ContainSubstring("SUMMARY:Standup (moved)"))
	g.Expect(text).To(ContainSubstring("TRIGGER:-PT5M"))
	g.Expect(text).To(ContainSubstring("ATTENDEE;CN=Bob:mailto:bob@example.com"))
	g.Expect(strings.Count(text, "BEGIN:VEVENT")).To(Equal(2))
}

func TestAnAllDayEventsDateIsText(t *testing.T) {
	g := NewWithT(t)
	obj := newICal("day-1", Events)
	g.Expect(obj.set(propPath{name: "DTSTART"}, connector.String("2026-03-02"))).To(Succeed())
	v, ok := obj.get(propPath{name: "DTSTART"})
	g.Expect(ok).To(BeTrue())
	g.Expect(v).To(Equal(connector.String("2026-03-02")))
	g.Expect(obj.set(propPath{name: "DUE"}, connector.String("next week"))).To(MatchError(ContainSubstring(`"next week" is not a date-time`)))
}

func TestPropertyPathSyntax(t *testing.T) {
	for _, bad := range []string{"", "EMAIL;TYPE", "EMAIL:work", "1FN", `EMAIL;TYPE="work"`, "EMAIL;TYPE=a,b"} {
		_, err := parseProp(bad)
		NewWithT(t).Expect(err).To(HaveOccurred(), bad)
	}
	p, err := parseProp("email;type=work;pref=1")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	NewWithT(t).Expect(p).To(Equal(propPath{name: "EMAIL", params: [][2]string{{"TYPE", "work"}, {"PREF", "1"}}}))
}

// FuzzVCardRoundTrip: whatever the reader accepts, the connector can write back and read again
// with the same properties, so an update never loses what it did not map.
func FuzzVCardRoundTrip(f *testing.F) {
	f.Add(card)
	f.Add("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nFN:A\\, B\r\nitem1.EMAIL;TYPE=\"work,pref\":a@x\r\nEND:VCARD\r\n")
	f.Add("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:y\r\nNOTE:folded\r\n  line\r\nEND:VCARD\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		obj, err := parseVCard([]byte(text))
		if err != nil {
			return
		}
		out, err := obj.encode()
		if err != nil {
			return // go-vcard refuses to write what it cannot (no VERSION): the item fails, nothing is written
		}
		again, err := parseVCard(out)
		if err != nil {
			t.Fatalf("a card written back does not parse: %v\n%q\n%q", err, text, out)
		}
		if a, b := obj.all(), again.all(); !maps.Equal(a, b) {
			t.Fatalf("written back, the card changed:\n%v\n%v", a, b)
		}
	})
}
