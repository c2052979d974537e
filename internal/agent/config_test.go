package agent

import (
	"errors"
	"testing"
	"time"

	"podwarden/internal/policy"
)

// TestConfigCheck: the one place the agent's settings are checked, by New
// and, before it dials anything, by the agent command (which names its
// flags from Setting).
func TestConfigCheck(t *testing.T) {
	ok := Config{Policy: policy.Default(), FastInterval: 2 * time.Second, KernelLog: SourceAuto}
	labels := ok
	labels.Policy.Selector.Labels = map[string]string{"podwarden.dev/protect": "true"}
	for name, tc := range map[string]struct {
		c           Config
		withRuntime bool
		setting     string // "" accepted
	}{
		"defaults":                   {ok, true, ""},
		"fast interval 0":            {with(ok, func(c *Config) { c.FastInterval = 0 }), true, "FastInterval"},
		"fast interval 11m":          {with(ok, func(c *Config) { c.FastInterval = 11 * time.Minute }), true, "FastInterval"},
		"interval 1ms":               {with(ok, func(c *Config) { c.Policy.Interval = time.Millisecond }), true, "Interval"},
		"kernel log dmesg":           {with(ok, func(c *Config) { c.KernelLog = "dmesg" }), true, "KernelLog"},
		"kernel log empty":           {with(ok, func(c *Config) { c.KernelLog = "" }), true, "KernelLog"},
		"labels with a runtime":      {labels, true, ""},
		"labels without one refused": {labels, false, "Policy"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.c.Check(tc.withRuntime)
			var ce *ConfigError
			switch {
			case tc.setting == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.setting != "" && !errors.As(err, &ce):
				t.Errorf("err %v, want a *ConfigError for %s", err, tc.setting)
			case tc.setting != "" && ce.Setting != tc.setting:
				t.Errorf("setting %q (%v), want %q", ce.Setting, err, tc.setting)
			}
		})
	}
}

func with(c Config, f func(*Config)) Config {
	f(&c)
	return c
}

// TestNewKernelLogDefaults: New fills in the source as the agent command
// used to: auto without a kmsg device is memory.events, not a syslog(2)
// read that was never asked for.
func TestNewKernelLogDefaults(t *testing.T) {
	n := newNode(t)
	for _, tc := range []struct{ source, kmsg, want string }{
		{"", "/dev/kmsg", SourceAuto},
		{"", "", SourceMemoryEvents},
		{SourceAuto, "", SourceMemoryEvents},
		{SourceSyslog, "", SourceSyslog},
	} {
		cfg := n.config(t, policy.Default())
		cfg.KernelLog, cfg.KmsgPath = tc.source, tc.kmsg
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a.cfg.KernelLog != tc.want {
			t.Errorf("KernelLog %q, KmsgPath %q -> %q, want %q", tc.source, tc.kmsg, a.cfg.KernelLog, tc.want)
		}
	}
}
