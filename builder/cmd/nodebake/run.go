package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/builder/qemu"
	"github.com/nodebake/nodebake/layers/firstboot"
)

func newRunCmd(e *env) *cobra.Command {
	var o qemu.RunOptions
	var firmwareDir string
	cmd := &cobra.Command{
		Use:   "run IMAGE [--node-config NODE.yaml]",
		Short: "Boot an image under QEMU, its console on the terminal",
		Long: "Boot a built image (raw or qcow2, told apart by its content) under QEMU with UEFI firmware\n" +
			"(OVMF, Debian package ovmf; each run gets its own copy of the firmware variables), KVM when\n" +
			"this machine has a working /dev/kvm with vmx or svm, TCG otherwise ($" + qemu.EnvAccel + " or\n" +
			"--accel overrides). The console is on the terminal: Ctrl-A X quits, Ctrl-A C switches to the\n" +
			"QEMU monitor. The guest's network is QEMU's user network with restrict=on: it reaches nothing\n" +
			"outside this machine. The guest writes to a throw-away snapshot, so the image is not modified\n" +
			"(unless --writable).\n\n" +
			"With --node-config the node config is the systemd credential " + firstboot.CredentialName + " (fw_cfg), which the\n" +
			"image's first-boot step reads; it prints \"nodebake-firstboot: node NAME configured ...\" when it\n" +
			"has configured the node.",
		Example: "  nodebake run out/worker.raw --node-config worker01.yaml\n  nodebake run out/worker.qcow2 -m 4096 --cpus 4",
		Args:    exactArgs(1, "exactly one image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Image = args[0]
			// Zero takes the defaults in RunOptions; on the command line
			// it is a mistake.
			if o.Memory <= 0 || o.CPUs <= 0 {
				return usagef("--memory %d and --cpus %d must be positive", o.Memory, o.CPUs)
			}
			if o.NodeConfig != "" {
				// The first-boot program's bound and parser, before the
				// guest boots: a node config that cannot be read fails here.
				if _, err := readNodeConfig(o.NodeConfig); err != nil {
					return err
				}
			}
			if firmwareDir != "" {
				fw, err := qemu.FindFirmware(firmwareDir)
				if err != nil {
					return usagef("--firmware: %v", err)
				}
				o.Firmware = fw
			}
			o.Stdin, o.Stdout, o.Stderr = e.stdin, e.stdout, e.stderr
			r, err := o.Resolve()
			if err != nil {
				return err
			}
			what := "a snapshot (the image is not modified)"
			if r.Writable {
				what = "the image itself (--writable)"
			}
			fmt.Fprintf(e.stderr, "nodebake run: booting %s (%s) on %s: %s, %d MiB, %d CPUs; Ctrl-A X quits\n",
				r.Image, r.Format, what, r.Accel, r.Memory, r.CPUs)
			return qemu.Run(cmd.Context(), r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.NodeConfig, "node-config", "", "the node config `FILE`, passed as the systemd credential "+firstboot.CredentialName)
	f.IntVarP(&o.Memory, "memory", "m", qemu.DefaultMemory, "guest memory in `MiB`")
	f.IntVar(&o.CPUs, "cpus", qemu.DefaultCPUs, "virtual `CPUS`")
	f.BoolVar(&o.Writable, "writable", false, "let the guest write to the image itself (no snapshot)")
	f.StringVar(&o.Format, "format", "", "the image's format, raw or qcow2 (default: from its content)")
	f.StringVar(&o.Accel, "accel", "", "the accelerator, kvm or tcg (default: kvm when it works here)")
	f.StringVar(&o.UUID, "uuid", "", "the guest's SMBIOS `UUID` (systemd derives the machine id from it)")
	f.StringVar(&firmwareDir, "firmware", "", "the OVMF `DIR` (default "+qemu.DefaultFirmwareDir+")")
	cmd.RegisterFlagCompletionFunc("accel", cobra.FixedCompletions([]string{qemu.AccelKVM, qemu.AccelTCG}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{qemu.FormatRaw, qemu.FormatQCOW2}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
