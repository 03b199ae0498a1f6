package connspec

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// seedDoc is Polyaxon's GCS connections page, which CI places in shared/ beside the clone.
var seedDoc = filepath.Join("..", "..", "shared", "polyaxon-gcs-connections.md")

type yamlBlock struct {
	line int // 1-based line of the block's first YAML line in the document
	text string
}

var fenceRE = regexp.MustCompile("(?m)^```([a-zA-Z]*)[ \t]*$")

// yamlBlocks returns every ```yaml block of a Markdown document.
func yamlBlocks(doc string) []yamlBlock {
	var blocks []yamlBlock
	locs := fenceRE.FindAllStringSubmatchIndex(doc, -1)
	for i := 0; i+1 < len(locs); i += 2 {
		open, end := locs[i], locs[i+1]
		if doc[open[2]:open[3]] != "yaml" {
			continue
		}
		body := doc[open[1]+1 : end[0]]
		blocks = append(blocks, yamlBlock{line: strings.Count(doc[:open[1]], "\n") + 2, text: body})
	}
	return blocks
}

// TestSeedDocExamples parses every YAML example of the seed documentation: connections and
// persistence lists with ParseYAML, run: sections with ParsePolyaxonfile. The document must be
// there: a missing seed is a failure, not a skip.
func TestSeedDocExamples(t *testing.T) {
	data, err := os.ReadFile(seedDoc)
	if err != nil {
		t.Fatalf("the seed documentation must be beside the repository (CI puts shared/ next to the clone): %v", err)
	}
	blocks := yamlBlocks(string(data))
	var catalogs, polyaxonfiles int
	for _, b := range blocks {
		name := fmt.Sprintf("%s:%d", filepath.Base(seedDoc), b.line)
		switch {
		case strings.HasPrefix(b.text, "connections:") || strings.HasPrefix(b.text, "persistence:"):
			catalogs++
			t.Run(name, func(t *testing.T) {
				cat, err := ParseYAML(name, []byte(b.text))
				if err != nil {
					t.Fatal(err)
				}
				conns, err := cat.Select(nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range conns {
					if c.Name == "" || c.Bucket != "gcs-datasets" || c.Secret == nil || c.Secret.Name != "gcs-secret" || c.Secret.MountPath == "" {
						t.Errorf("connection parsed as %+v", c)
					}
					if c.Prefix != "" && c.Prefix != "path1/" && c.Prefix != "path2/" {
						t.Errorf("%s: prefix %q", c.Name, c.Prefix)
					}
				}
			})
		case strings.HasPrefix(b.text, "run:"):
			polyaxonfiles++
			t.Run(name, func(t *testing.T) {
				pf, err := ParsePolyaxonfile(name, []byte(b.text))
				if err != nil {
					t.Fatal(err)
				}
				if len(pf.Connections) == 0 && len(pf.Init) == 0 {
					t.Errorf("nothing read from %q", b.text)
				}
				for _, in := range pf.Init {
					if in.Connection != "gcs-dataset1" || len(in.Dirs) == 0 || len(in.Files) == 0 {
						t.Errorf("init entry parsed as %+v", in)
					}
				}
			})
		default:
			t.Errorf("%s: unexpected YAML example (neither connections nor run): %q", name, b.text)
		}
	}
	// The seed has three connection examples and three run examples; fewer means the
	// extraction broke, not that there is less to test.
	if catalogs < 3 || polyaxonfiles < 3 {
		t.Errorf("found %d connection examples and %d run examples in %s; want at least 3 of each", catalogs, polyaxonfiles, seedDoc)
	}
}

func TestYAMLBlocks(t *testing.T) {
	doc := "text\n```yaml\na: 1\n```\n\n```bash\nls\n```\n```yaml\nb: 2\nc: 3\n```\n"
	got := yamlBlocks(doc)
	if len(got) != 2 || got[0].text != "a: 1\n" || got[0].line != 3 || got[1].text != "b: 2\nc: 3\n" || got[1].line != 10 {
		t.Errorf("yamlBlocks = %+v", got)
	}
}
