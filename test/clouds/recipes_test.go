package clouds

import (
	"reflect"
	"strings"
	"testing"
)

func TestBlocks(t *testing.T) {
	doc := "# T\n\n```hcl validate-source\nsource \"nodebake\" \"w\" {\n}\n```\n\ntext\n\n" +
		"- item\n\n  ```sh\n  echo a \\\n    b\n  ```\n\n```\nplain\n```\n"
	got, err := Blocks([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Lang: "hcl", Tag: TagSource, Line: 3, Text: "source \"nodebake\" \"w\" {\n}\n"},
		{Lang: "sh", Line: 12, Text: "echo a \\\n  b\n"},
		{Line: 17, Text: "plain\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Blocks =\n%#v\nwant\n%#v", got, want)
	}

	for name, bad := range map[string]string{
		"unclosed":  "```hcl\nx\n",
		"too large": strings.Repeat("x", maxDoc+1),
		"too many":  strings.Repeat("```\n```\n", maxBlocks+1),
	} {
		if _, err := Blocks([]byte(bad)); err == nil {
			t.Errorf("%s: Blocks accepted it", name)
		}
	}
}

const sample = `packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon" # a comment { with a brace
      version = ">= 1.8.2"
    }
  }
}

source "nodebake" "worker" {
  output {
    formats = ["vmdk", "gce"]
  }
}

build {
  sources = ["source.nodebake.worker"]
  /* a comment
     } with a brace */
  post-processor "shell-local" {
    inline = [
      "echo {not a block} ${build.ImagePath} ${formatdate("YYYY", timestamp())}",
      "echo \"quoted } brace\"",
    ]
  }
  post-processors {
    post-processor "artifice" {
      files = [build.GCEPath]
    }
    post-processor "googlecompute-import" {
      image_name = "x-%{ if true }y%{ endif }"
      image_guest_os_features = ["UEFI_COMPATIBLE"]
    }
  }
  post-processors {
    post-processor "amazon-import" {
      boot_mode = "uefi"
    }
  }
}
`

func TestParseHCL(t *testing.T) {
	h, err := ParseHCL(sample)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"amazon": "github.com/hashicorp/amazon"}; !reflect.DeepEqual(h.Plugins, want) {
		t.Errorf("Plugins = %v, want %v", h.Plugins, want)
	}
	if want := []string{"vmdk", "gce"}; !reflect.DeepEqual(h.Formats, want) {
		t.Errorf("Formats = %q, want %q", h.Formats, want)
	}
	type pp struct {
		Type         string
		Line         int
		Chain, Pos   int
		Attrs        map[string]string
		BodyHasBuild bool
	}
	var got []pp
	for _, p := range h.PostProcessors {
		got = append(got, pp{p.Type, p.Line, p.Chain, p.Pos, p.Attrs, strings.Contains(p.Body, "build.")})
	}
	want := []pp{
		{"shell-local", 20, -1, 0, map[string]string{"inline": "["}, true},
		{"artifice", 27, 0, 0, map[string]string{"files": "[build.GCEPath]"}, true},
		{"googlecompute-import", 30, 0, 1, map[string]string{"image_name": `"x-%{ if true }y%{ endif }"`, "image_guest_os_features": `["UEFI_COMPATIBLE"]`}, false},
		{"amazon-import", 36, 1, 0, map[string]string{"boot_mode": `"uefi"`}, false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PostProcessors =\n%+v\nwant\n%+v", got, want)
	}
	if b := h.PostProcessors[0].Body; !strings.HasPrefix(b, "    inline = [\n") || !strings.HasSuffix(b, "    ]\n") {
		t.Errorf("shell-local body = %q, want the lines between its braces", b)
	}
}

func TestParseHCLRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"unclosed block":        "build {\n",
		"stray brace":           "}\n",
		"unclosed string":       "build {\n  x = \"a\n}\n",
		"unclosed interp":       "build {\n  x = \"${a\"\n}\n",
		"heredoc":               "build {\n  x = <<EOF\nhi\nEOF\n}\n",
		"two openings":          "build { post-processor \"x\" {\n}\n}\n",
		"unclosed comment":      "/* x\n",
		"post-processor labels": "build {\n  post-processor {\n  }\n}\n",
		"source labels":         "source \"nodebake\" {\n}\n",
		"too deep":              strings.Repeat("a {\n", maxDepth+1) + strings.Repeat("}\n", maxDepth+1),
	} {
		if _, err := ParseHCL(src); err == nil {
			t.Errorf("%s: ParseHCL accepted\n%s", name, src)
		}
	}
}

func TestLogical(t *testing.T) {
	got := Logical("a \\\n  b \\\n  c\nd\n")
	want := []string{"a   b   c", "d", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Logical = %q, want %q", got, want)
	}
}

func FuzzParseHCL(f *testing.F) {
	f.Add(sample)
	f.Add("a {\n  b = \"${c(\"{\")}\"\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		h, err := ParseHCL(src)
		if err != nil {
			return
		}
		for _, p := range h.PostProcessors {
			if p.Attrs == nil || p.Line < 1 || p.Chain < -1 {
				t.Fatalf("post-processor %+v", p)
			}
		}
	})
}

func FuzzBlocks(f *testing.F) {
	f.Add([]byte("```hcl validate\nx\n```\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		bs, err := Blocks(doc)
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Line < 1 || len(b.Text) > len(doc) {
				t.Fatalf("block %+v", b)
			}
		}
	})
}
