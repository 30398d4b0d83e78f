package nodebake

import (
	"context"
	"errors"
	"io"
	"os"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// ErrNoMachine is what every communicator operation returns: nodebake
// writes a disk image without booting a machine, so there is nothing to
// run commands on or copy files to.
var ErrNoMachine = errors.New("the nodebake builder boots no machine, so provisioners that need a communicator " +
	"(shell, file, ansible, ...) cannot run: bake files in with file blocks (or files: in the spec), " +
	"and use shell-local provisioners or post-processors for work on the Packer host")

// noMachine is the communicator handed to provisioners: it refuses
// everything with ErrNoMachine, and calls refused (when set) first, so the
// builder can stop a provisioner that would retry for minutes.
type noMachine struct {
	refused func()
}

var _ packersdk.Communicator = noMachine{}

func (m noMachine) refuse() error {
	if m.refused != nil {
		m.refused()
	}
	return ErrNoMachine
}

func (m noMachine) Start(context.Context, *packersdk.RemoteCmd) error { return m.refuse() }
func (m noMachine) Upload(string, io.Reader, *os.FileInfo) error      { return m.refuse() }
func (m noMachine) UploadDir(string, string, []string) error          { return m.refuse() }
func (m noMachine) Download(string, io.Writer) error                  { return m.refuse() }
func (m noMachine) DownloadDir(string, string, []string) error        { return m.refuse() }
