package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	. "github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/chainsync/chainsync/controllers"
)

// exported are the metrics the manager serves, by name, with their label names: what
// controllers registers in controller-runtime's registry (its package init), histograms
// expanded into the series Prometheus stores.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	descFields := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for _, c := range controllers.Collectors() {
		// Registering again is refused for a collector already registered: so it is served.
		var already prometheus.AlreadyRegisteredError
		if err := metrics.Registry.Register(c); !errors.As(err, &already) {
			t.Fatalf("a collector of controllers.Collectors() is not in controller-runtime's registry: %v", err)
		}
		descs := make(chan *prometheus.Desc, 32)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			m := descFields.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
			}
			out[m[1]] = labels
			if _, isHistogram := c.(*prometheus.HistogramVec); isHistogram {
				out[m[1]+"_bucket"] = append(slices.Clone(labels), "le")
				out[m[1]+"_sum"] = labels
				out[m[1]+"_count"] = labels
			}
		}
	}
	if len(out) < 8 {
		t.Fatalf("read only %d metric names from controllers.Collectors(): %v", len(out), out)
	}
	return out
}

// checkExpr parses a PromQL expression and checks that every metric it reads is exported, with
// the labels it matches and groups by. It returns the labels of the expression's result, which
// legends and alert templates may name.
func checkExpr(g Gomega, exported map[string][]string, expr string) map[string]bool {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	g.Expect(err).NotTo(HaveOccurred(), expr)
	var names int
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		names++
		labels, ok := exported[vs.Name]
		g.Expect(ok).To(BeTrue(), "%s reads %q, which chainsync does not export", expr, vs.Name)
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel {
				g.Expect(labels).To(ContainElement(m.Name), "%s matches label %q, which %s does not have", expr, m.Name, vs.Name)
			}
		}
		return nil
	})
	g.Expect(names).To(BeNumerically(">", 0), "%s reads no metric", expr)
	return resultLabels(g, exported, e)
}

// resultLabels are the labels a query's series carry, for the expressions the dashboard and
// the alerts use; an expression of another kind fails the test until it is taught here.
func resultLabels(g Gomega, exported map[string][]string, e parser.Expr) map[string]bool {
	set := func(names []string) map[string]bool {
		s := map[string]bool{}
		for _, n := range names {
			s[n] = true
		}
		return s
	}
	switch e := e.(type) {
	case *parser.VectorSelector:
		return set(exported[e.Name])
	case *parser.MatrixSelector:
		return resultLabels(g, exported, e.VectorSelector)
	case *parser.ParenExpr:
		return resultLabels(g, exported, e.Expr)
	case *parser.NumberLiteral:
		return map[string]bool{}
	case *parser.AggregateExpr:
		inner := resultLabels(g, exported, e.Expr)
		g.Expect(e.Without).To(BeFalse(), "aggregate with by (...), so the result's labels are known")
		for _, l := range e.Grouping {
			g.Expect(inner).To(HaveKey(l), "%s groups by %q, which its input does not have", e, l)
		}
		return set(e.Grouping)
	case *parser.Call:
		switch e.Func.Name {
		case "rate", "increase":
			return resultLabels(g, exported, e.Args[0])
		case "histogram_quantile":
			in := resultLabels(g, exported, e.Args[1])
			g.Expect(in).To(HaveKey("le"), "%s needs the le label", e)
			delete(in, "le")
			return in
		case "time", "vector":
			return map[string]bool{}
		}
	case *parser.BinaryExpr:
		lhs, rhs := resultLabels(g, exported, e.LHS), resultLabels(g, exported, e.RHS)
		if e.Op == parser.LOR {
			maps.Copy(lhs, rhs)
			return lhs
		}
		if e.LHS.Type() == parser.ValueTypeScalar || len(lhs) == 0 {
			return rhs
		}
		if e.RHS.Type() == parser.ValueTypeVector && e.VectorMatching != nil && e.VectorMatching.Card == parser.CardOneToOne && !e.VectorMatching.On && len(e.VectorMatching.MatchingLabels) == 0 {
			g.Expect(lhs).To(Equal(rhs), "%s: both sides match on all their labels", e)
		}
		return lhs
	}
	g.Expect(fmt.Sprintf("%T", e)).To(BeEmpty(), "%s: resultLabels does not know this kind of expression", e)
	return nil
}

func TestAlertsReadExportedMetricsAndParse(t *testing.T) {
	g := NewWithT(t)
	metricsByName := exported(t)
	raw, err := os.ReadFile("prometheus/alerts.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	rule := &monitoringv1.PrometheusRule{}
	// Strict: a misspelt field would be dropped silently by the Prometheus Operator.
	g.Expect(yaml.UnmarshalStrict(raw, rule)).To(Succeed())
	g.Expect(rule.APIVersion).To(Equal(monitoringv1.SchemeGroupVersion.String()))
	g.Expect(rule.Kind).To(Equal(monitoringv1.PrometheusRuleKind))
	g.Expect(rule.Name).NotTo(BeEmpty())
	g.Expect(rule.Spec.Groups).NotTo(BeEmpty())

	var alerts []string
	for _, group := range rule.Spec.Groups {
		g.Expect(group.Name).NotTo(BeEmpty())
		for _, r := range group.Rules {
			g.Expect(r.Record).To(BeEmpty(), "alerts only")
			g.Expect(r.Alert).To(MatchRegexp(`^Chainsync[A-Z][A-Za-z]+$`))
			g.Expect(alerts).NotTo(ContainElement(r.Alert), "alert names are unique")
			alerts = append(alerts, r.Alert)
			labels := checkExpr(g, metricsByName, r.Expr.String())
			g.Expect(r.For).NotTo(BeNil(), "%s waits before firing", r.Alert)
			_, err := model.ParseDuration(string(*r.For))
			g.Expect(err).NotTo(HaveOccurred(), r.Alert)
			g.Expect(r.Labels).To(HaveKeyWithValue("severity", BeElementOf("info", "warning", "critical")), r.Alert)
			g.Expect(r.Annotations).To(HaveKey("summary"), r.Alert)
			g.Expect(r.Annotations).To(HaveKey("description"), r.Alert)
			for name, text := range r.Annotations {
				expectTemplateUsesLabels(g, r.Alert+" "+name, text, labels)
			}
		}
	}
	// What the issue asks the alerts to tell.
	g.Expect(alerts).To(ContainElements("ChainsyncUsersStalled", "ChainsyncCyclesFailing", "ChainsyncStepNotDraining", "ChainsyncDeletesHeld"))
}

// expectTemplateUsesLabels parses an alert annotation as Prometheus does (its template
// language, $labels and $value defined first) and checks that it names only labels the
// alert's series have: another would print "<no value>".
func expectTemplateUsesLabels(g Gomega, what, text string, labels map[string]bool) {
	noop := func(v any) string { return fmt.Sprint(v) }
	funcs := template.FuncMap{"humanize": noop, "humanizeDuration": noop, "humanizePercentage": noop, "humanizeTimestamp": noop}
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
	_, err := template.New(what).Funcs(funcs).Option("missingkey=zero").Parse(defs + text)
	g.Expect(err).NotTo(HaveOccurred(), what)
	for _, m := range regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`).FindAllStringSubmatch(text, -1) {
		g.Expect(labels).To(HaveKey(m[1]), "%s names $labels.%s, which its expression's result does not have", what, m[1])
	}
}

// grafanaDashboard is the part of Grafana's dashboard JSON model the test checks.
type grafanaDashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID        string `json:"refId"`
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestDashboardReadsExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	metricsByName := exported(t)
	raw, err := os.ReadFile("prometheus/dashboard.json")
	g.Expect(err).NotTo(HaveOccurred())
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var d grafanaDashboard
	g.Expect(dec.Decode(&d)).To(Succeed())
	g.Expect(d.Title).NotTo(BeEmpty())
	g.Expect(d.UID).To(MatchRegexp(`^[a-zA-Z0-9-_]{1,40}$`), "Grafana's uid limit")
	// Grafana 9 (36) and later read it without migrating.
	g.Expect(d.SchemaVersion).To(BeNumerically(">=", 36))

	// Grafana's variables, and what a query has in their place when Prometheus runs it.
	values := map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "6h"}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			values[v.Name] = "prometheus"
		case "query":
			values[v.Name] = ".*"
			q, _ := v.Query.(map[string]any)
			query, _ := q["query"].(string)
			inner := regexp.MustCompile(`^label_values\((.*), *[a-z_]+\)$`).FindStringSubmatch(query)
			g.Expect(inner).NotTo(BeNil(), "variable %s: a label_values query", v.Name)
			checkExpr(g, metricsByName, substitute(g, inner[1], values))
		default:
			t.Fatalf("variable %s of type %s", v.Name, v.Type)
		}
	}

	ids := map[int]bool{}
	cells := map[[2]int]string{}
	read := map[string]bool{}
	for _, p := range d.Panels {
		g.Expect(ids).NotTo(HaveKey(p.ID), "panel ids are unique")
		ids[p.ID] = true
		g.Expect(p.Type).To(BeElementOf("stat", "timeseries", "bargauge", "table", "gauge"), p.Title)
		g.Expect(p.Title).NotTo(BeEmpty())
		g.Expect(p.Datasource.UID).To(Equal("${datasource}"), "%s queries the data source chosen in the dashboard", p.Title)
		g.Expect(p.GridPos.W).To(BeNumerically(">", 0))
		g.Expect(p.GridPos.H).To(BeNumerically(">", 0))
		g.Expect(p.GridPos.X+p.GridPos.W).To(BeNumerically("<=", 24), "%s fits Grafana's 24 columns", p.Title)
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				g.Expect(cells).NotTo(HaveKey([2]int{x, y}), "%s overlaps %s", p.Title, cells[[2]int{x, y}])
				cells[[2]int{x, y}] = p.Title
			}
		}
		g.Expect(p.Targets).NotTo(BeEmpty(), "%s has queries", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			g.Expect(refs).NotTo(HaveKey(tg.RefID), p.Title)
			refs[tg.RefID] = true
			labels := checkExpr(g, metricsByName, substitute(g, tg.Expr, values))
			for _, m := range regexp.MustCompile(`\{\{ *([a-zA-Z_][a-zA-Z0-9_]*) *\}\}`).FindAllStringSubmatch(tg.LegendFormat, -1) {
				g.Expect(labels).To(HaveKey(m[1]), "%s: the legend names %q, which the query's result does not have", p.Title, m[1])
			}
			e, _ := parser.NewParser(parser.Options{}).ParseExpr(substitute(g, tg.Expr, values))
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					read[strings.TrimSuffix(vs.Name, "_bucket")] = true
				}
				return nil
			})
		}
	}
	// What the issue asks the dashboard to show: users per step, cycles by outcome, items per
	// second, cycle duration percentiles, stalled users.
	g.Expect(slices.Sorted(maps.Keys(read))).To(ContainElements("chainsync_chain_step_users", "chainsync_cycles_finished_total",
		"chainsync_items_applied_total", "chainsync_cycle_duration_seconds", "chainsync_stalled_users"))
}

// substitute puts the value of each Grafana variable ($name, ${name}) into a query; a variable
// the dashboard does not define fails the test.
func substitute(g Gomega, expr string, values map[string]string) string {
	return regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`).ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		value, ok := values[name]
		g.Expect(ok).To(BeTrue(), "%s uses the undefined variable %s", expr, v)
		return value
	})
}

// config/prometheus renders for the Prometheus Operator: a ServiceMonitor that finds the metrics
// Service of config/default, the alerts, and the dashboard as Grafana's sidecar loads it.
func TestPrometheusConfigRendersAndFindsTheMetricsService(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "prometheus")
	byKind := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		g.Expect(byKind).NotTo(HaveKey(o.GetKind()))
		byKind[o.GetKind()] = o
	}
	g.Expect(byKind).To(HaveLen(3))

	var service *unstructured.Unstructured
	for _, o := range render(t, "default") {
		if o.GetKind() == "Service" && strings.HasSuffix(o.GetName(), "-metrics") {
			service = o
		}
	}
	g.Expect(service).NotTo(BeNil())
	raw, err := json.Marshal(byKind["ServiceMonitor"].Object)
	g.Expect(err).NotTo(HaveOccurred())
	monitor := &monitoringv1.ServiceMonitor{}
	g.Expect(json.Unmarshal(raw, monitor)).To(Succeed())
	g.Expect(monitor.Namespace).To(Equal(service.GetNamespace()), "a ServiceMonitor selects Services of its own namespace unless told otherwise")
	g.Expect(service.GetLabels()).To(gomegaHaveAll(monitor.Spec.Selector.MatchLabels), "the ServiceMonitor selects the metrics Service")
	ports, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports")
	var portNames []string
	for _, p := range ports {
		portNames = append(portNames, p.(map[string]any)["name"].(string))
	}
	g.Expect(monitor.Spec.Endpoints).To(HaveLen(1))
	g.Expect(portNames).To(ContainElement(monitor.Spec.Endpoints[0].Port))

	dashboard := byKind["ConfigMap"]
	g.Expect(dashboard.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
	data, _, _ := unstructured.NestedStringMap(dashboard.Object, "data")
	file, err := os.ReadFile("prometheus/dashboard.json")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data).To(HaveKeyWithValue("chainsync.json", string(file)))
}

func gomegaHaveAll(want map[string]string) OmegaMatcher {
	var ms []OmegaMatcher
	for k, v := range want {
		ms = append(ms, HaveKeyWithValue(k, v))
	}
	if len(ms) == 0 {
		return BeNil() // An empty selector selects everything: refuse it.
	}
	return And(ms...)
}
