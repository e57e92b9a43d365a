package dav

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/chainsync/chainsync/internal/connector"
)

// OriginPropertyName holds chainsync's origin token in the vCards and iCalendar objects it writes.
const OriginPropertyName = "X-CHAINSYNC-ORIGIN"

// propPath is a field: a property by name, optionally the one with given parameter values, as in
// EMAIL;TYPE=work.
type propPath struct {
	name   string
	params [][2]string
}

var propPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*(;[A-Za-z][A-Za-z0-9-]*=[^;:,"]+)*$`)

// parseProp reads NAME or NAME;PARAM=value[;PARAM=value...]; names are case-insensitive.
func parseProp(field string) (propPath, error) {
	if !propPattern.MatchString(field) {
		return propPath{}, fmt.Errorf("%q is not a property (NAME, or NAME;PARAM=value as in EMAIL;TYPE=work)", field)
	}
	parts := strings.Split(field, ";")
	p := propPath{name: strings.ToUpper(parts[0])}
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(kv, "=")
		p.params = append(p.params, [2]string{strings.ToUpper(k), v})
	}
	return p, nil
}

// matches reports whether a property's parameters hold every value the path asks for; a
// parameter may list several values, comma-separated or repeated (TYPE=work,voice).
func (p propPath) matches(params map[string][]string) bool {
	for _, want := range p.params {
		found := false
		for k, values := range params {
			if !strings.EqualFold(k, want[0]) {
				continue
			}
			for _, v := range values {
				for _, one := range strings.Split(v, ",") {
					found = found || strings.EqualFold(strings.TrimSpace(one), want[1])
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// object is a vCard or an iCalendar object, seen as the properties of its main component.
type object interface {
	uid() string
	get(p propPath) (connector.Value, bool)
	// set writes v into the property p picks, adding it (with p's parameters) when there is none;
	// a null v removes it.
	set(p propPath, v connector.Value) error
	// all is every property, by name and, for a property with a TYPE, also by NAME;TYPE=<type>.
	all() map[string]connector.Value
	encode() ([]byte, error)
}

// modifiedProperty is the property a kind of object keeps its modification time in.
func modifiedProperty(p Protocol) string {
	if p == CardDAV {
		return "REV"
	}
	return "LAST-MODIFIED"
}

// timeLayouts are the forms of a date-time in vCard 3 and 4 and iCalendar.
var timeLayouts = []string{"20060102T150405Z", "2006-01-02T15:04:05Z", "2006-01-02T15:04:05Z07:00", "20060102T150405Z0700"}

func parseTimestamp(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// --- vCard ---

type vcardObject struct{ card vcard.Card }

// vcardLine is what a content line must look like for go-vcard to read and write it back as it
// was: [group.]NAME[;PARAM=value[,value]...]...:value. A bare parameter (vCard 2.1's TEL;WORK:)
// would swallow the value, and a quoted parameter value holding : or ; be written back unquoted.
var vcardLine = regexp.MustCompile(`^([A-Za-z0-9-]+\.)?[A-Za-z0-9-]+(;[A-Za-z0-9-]+=("[^";:]*"|[^";:,]*)(,("[^";:]*"|[^";:,]*))*)*:`)

// parseVCard reads a vCard, refusing one with a line it cannot read: go-vcard skips such lines,
// and a card written back without them would lose them.
func parseVCard(data []byte) (*vcardObject, error) {
	var line strings.Builder
	n := 0
	check := func() error {
		if l := line.String(); l != "" && !vcardLine.MatchString(l) {
			return fmt.Errorf("line %d is not a vCard property: %.60q", n, l)
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			line.WriteString(l[1:])
			continue
		}
		if err := check(); err != nil {
			return nil, err
		}
		n++
		line.Reset()
		line.WriteString(l)
	}
	if err := check(); err != nil {
		return nil, err
	}
	card, err := vcard.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return nil, fmt.Errorf("not a vCard: %w", err)
	}
	if card.Value(vcard.FieldVersion) == "" {
		return nil, errors.New("not a vCard: no VERSION")
	}
	return &vcardObject{card: card}, nil
}

func newVCard(uid string) *vcardObject {
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "3.0")
	card.SetValue(vcard.FieldUID, uid)
	return &vcardObject{card: card}
}

func (o *vcardObject) uid() string { return o.card.Value(vcard.FieldUID) }

// pick is the field p addresses: among those that match, the preferred one, else the first.
func (o *vcardObject) pick(p propPath) *vcard.Field {
	var first *vcard.Field
	for _, f := range o.card[p.name] {
		if !p.matches(f.Params) {
			continue
		}
		if f.Params.Get(vcard.ParamPreferred) == "1" || f.Params.HasType("pref") {
			return f
		}
		if first == nil {
			first = f
		}
	}
	return first
}

func (o *vcardObject) get(p propPath) (connector.Value, bool) {
	f := o.pick(p)
	if f == nil {
		return connector.Value{}, false
	}
	if p.name == "REV" {
		if t, ok := parseTimestamp(f.Value); ok {
			return connector.Time(t), true
		}
	}
	return connector.String(f.Value), true
}

func (o *vcardObject) set(p propPath, v connector.Value) error {
	f := o.pick(p)
	if v.IsNull() {
		if f != nil {
			o.card[p.name] = slices.DeleteFunc(o.card[p.name], func(g *vcard.Field) bool { return g == f })
			if len(o.card[p.name]) == 0 {
				delete(o.card, p.name)
			}
		}
		return nil
	}
	text := v.Text
	if v.Kind == connector.KindTime {
		t, err := v.AsTime()
		if err != nil {
			return err
		}
		text = t.UTC().Format("20060102T150405Z")
	}
	if f == nil {
		f = &vcard.Field{Params: vcard.Params{}}
		for _, kv := range p.params {
			f.Params.Add(kv[0], kv[1])
		}
		o.card.Add(p.name, f)
	}
	f.Value = text
	return nil
}

func (o *vcardObject) all() map[string]connector.Value {
	out := map[string]connector.Value{}
	for name := range o.card {
		if name == vcard.FieldVersion {
			continue
		}
		if v, ok := o.get(propPath{name: name}); ok {
			out[name] = v
		}
		for _, f := range o.card[name] {
			for _, t := range f.Params.Types() {
				key := name + ";TYPE=" + t
				if _, seen := out[key]; !seen {
					out[key] = connector.String(f.Value)
				}
			}
		}
	}
	return out
}

func (o *vcardObject) encode() ([]byte, error) {
	var b bytes.Buffer
	err := vcard.NewEncoder(&b).Encode(o.card)
	return b.Bytes(), err
}

// --- iCalendar ---

// icalObject is an iCalendar object: the events (or tasks) of one UID, the master and its
// exceptions (RECURRENCE-ID), with the time zones they use. Fields are the master's properties;
// exceptions are kept as they are.
type icalObject struct {
	cal  *ical.Calendar
	main *ical.Component
}

func parseICal(data []byte, component string) (*icalObject, error) {
	cal, err := ical.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return nil, fmt.Errorf("not an iCalendar object: %w", err)
	}
	o := &icalObject{cal: cal}
	for _, c := range cal.Children {
		if c.Name != component {
			continue
		}
		if c.Props.Get(ical.PropRecurrenceID) == nil {
			o.main = c
			break
		}
		if o.main == nil {
			o.main = c // an object of exceptions only (an invitation to some occurrences)
		}
	}
	if o.main == nil {
		return nil, fmt.Errorf("the iCalendar object holds no %s", component)
	}
	return o, nil
}

func newICal(uid, component string) *icalObject {
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//chainsync//dav connector//EN")
	main := ical.NewComponent(component)
	main.Props.SetText(ical.PropUID, uid)
	cal.Children = append(cal.Children, main)
	return &icalObject{cal: cal, main: main}
}

func (o *icalObject) uid() string {
	if p := o.main.Props.Get(ical.PropUID); p != nil {
		return p.Value
	}
	return ""
}

func (o *icalObject) pick(p propPath) *ical.Prop {
	if i := o.index(p); i >= 0 {
		return &o.main.Props[p.name][i]
	}
	return nil
}

func (o *icalObject) index(p propPath) int {
	return slices.IndexFunc(o.main.Props[p.name], func(q ical.Prop) bool { return p.matches(q.Params) })
}

// icalValue reads a property: a date-time is a Time, a date its text (2024-03-01), text
// unescaped, anything else (RRULE, DURATION) as written.
func icalValue(prop *ical.Prop) connector.Value {
	switch prop.ValueType() {
	case ical.ValueDateTime:
		var loc *time.Location
		if tzid := prop.Params.Get(ical.PropTimezoneID); tzid != "" {
			loc, _ = time.LoadLocation(tzid)
		}
		if loc == nil {
			loc = time.UTC
		}
		if t, err := prop.DateTime(loc); err == nil {
			return connector.Time(t)
		}
	case ical.ValueDate:
		if t, err := time.Parse("20060102", prop.Value); err == nil {
			return connector.String(t.Format(time.DateOnly))
		}
	case ical.ValueText:
		if s, err := prop.Text(); err == nil {
			return connector.String(s)
		}
	}
	return connector.String(prop.Value)
}

func (o *icalObject) get(p propPath) (connector.Value, bool) {
	prop := o.pick(p)
	if prop == nil {
		return connector.Value{}, false
	}
	return icalValue(prop), true
}

// dateTimeProps are the properties whose values are a DATE-TIME (or a DATE).
var dateTimeProps = []string{ical.PropDateTimeStart, ical.PropDateTimeEnd, ical.PropDue, ical.PropCompleted,
	ical.PropLastModified, ical.PropCreated, ical.PropDateTimeStamp, ical.PropRecurrenceID}

func (o *icalObject) set(p propPath, v connector.Value) error {
	if v.IsNull() {
		if i := o.index(p); i >= 0 {
			o.main.Props[p.name] = slices.Delete(o.main.Props[p.name], i, i+1)
			if len(o.main.Props[p.name]) == 0 {
				delete(o.main.Props, p.name)
			}
		}
		return nil
	}
	prop := o.pick(p)
	if prop == nil {
		np := ical.NewProp(p.name)
		for _, kv := range p.params {
			np.Params.Add(kv[0], kv[1])
		}
		o.main.Props.Add(np)
		prop = o.pick(p)
	}
	if slices.Contains(dateTimeProps, p.name) {
		return setDateTime(prop, v)
	}
	if prop.ValueType() == ical.ValueText {
		prop.SetText(v.Text)
		return nil
	}
	prop.Value = v.Text
	return nil
}

// setDateTime writes a time in the property's own time zone when it has one (so that a weekly
// meeting stays at 9:00 across daylight saving time), in UTC otherwise; a date (2024-03-01)
// stays a date.
func setDateTime(prop *ical.Prop, v connector.Value) error {
	var t time.Time
	var err error
	switch {
	case v.Kind == connector.KindTime:
		t, err = v.AsTime()
	default:
		if d, derr := time.Parse(time.DateOnly, v.Text); derr == nil {
			prop.Params.Del(ical.PropTimezoneID)
			prop.SetDate(d)
			return nil
		}
		t, err = time.Parse(time.RFC3339Nano, v.Text)
		if err != nil {
			if pt, ok := parseTimestamp(v.Text); ok {
				t, err = pt, nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not a date-time (RFC 3339) or a date (2006-01-02)", prop.Name, v.Text)
	}
	loc := time.UTC
	if tzid := prop.Params.Get(ical.PropTimezoneID); tzid != "" {
		if l, lerr := time.LoadLocation(tzid); lerr == nil {
			loc = l
		}
	}
	prop.Params.Del(ical.PropTimezoneID)
	prop.Params.Del(ical.ParamValue)
	prop.SetDateTime(t.In(loc).Truncate(time.Second))
	return nil
}

func (o *icalObject) all() map[string]connector.Value {
	out := map[string]connector.Value{}
	for name, props := range o.main.Props {
		if len(props) > 0 {
			out[name] = icalValue(&props[0])
		}
	}
	return out
}

func (o *icalObject) encode() ([]byte, error) {
	var b bytes.Buffer
	err := ical.NewEncoder(&b).Encode(o.cal)
	return b.Bytes(), err
}
