package cli

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// kubectl runs the binary as kubectl-chainsync for `kubectl chainsync ...`, and as
// kubectl_complete-chainsync with the words after `kubectl chainsync` to complete them.
func TestTheBinaryIsTheKubectlPluginUnderItsNames(t *testing.T) {
	g := NewWithT(t)
	var out strings.Builder
	g.Expect(execute(PluginName, []string{"--help"}, &out, &out)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("kubectl chainsync [command]"))
	g.Expect(out.String()).To(ContainSubstring("approve"))
	g.Expect(out.String()).NotTo(ContainSubstring("manager"), "the operator's commands are not a person's")
	g.Expect(out.String()).NotTo(ContainSubstring("completion"), "kubectl completes through kubectl_complete-chainsync")

	out.Reset()
	g.Expect(execute(PluginName, []string{"approve", "--help"}, &out, &out)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("kubectl chainsync approve USER..."))
	g.Expect(out.String()).To(ContainSubstring("--kubeconfig string"), "kubectl's own flags")
	g.Expect(out.String()).To(ContainSubstring("-n, --namespace string"))

	out.Reset()
	g.Expect(execute(PluginCompleteName, []string{"su"}, &out, &out)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("suspend\t"))
	g.Expect(out.String()).To(ContainSubstring(":4\n"))

	out.Reset()
	g.Expect(execute("chainsync", []string{"--help"}, &out, &out)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("chainsync [command]"))
	g.Expect(out.String()).To(ContainSubstring("manager"))
}
