package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/chainsync/chainsync/internal/testenv"
)

// Every field a user can set or read has `kubectl explain` text: the doc comment on the Go field.
func TestEveryFieldIsExplained(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).NotTo(BeEmpty())

	for _, file := range files {
		raw, err := os.ReadFile(file)
		g.Expect(err).NotTo(HaveOccurred())
		var crd apiextensionsv1.CustomResourceDefinition
		g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
		for _, v := range crd.Spec.Versions {
			var undocumented []string
			collectUndocumented(crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema, &undocumented)
			g.Expect(undocumented).To(BeEmpty(), "fields of %s without a description", crd.Spec.Names.Kind)
		}
	}
}

func collectUndocumented(path string, s *apiextensionsv1.JSONSchemaProps, out *[]string) {
	if s == nil {
		return
	}
	if s.Description == "" {
		*out = append(*out, path)
	}
	for name, prop := range s.Properties {
		if path == "" || isMetadata(path, name) {
			continue
		}
		collectUndocumented(path+"."+name, &prop, out)
	}
	if s.Items != nil && s.Items.Schema != nil && s.Items.Schema.Type == "object" {
		collectUndocumented(path+"[]", s.Items.Schema, out)
	}
}

// The top-level metadata's schema is the API server's, not ours.
func isMetadata(path, name string) bool {
	return name == "metadata" && !strings.Contains(path, ".")
}
