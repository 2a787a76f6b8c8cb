// Package provision turns one project file into the kits every participant
// of an MFN federation needs, so that nobody assembles peer lists, cluster
// files or API key files by hand.
//
// # The project file
//
// project.toml names the cluster origin (the audit log key's name), the
// coordinators with their hosts and ports, the data sites and the
// operators with their roles:
//
//	origin = "mfn.example/cluster-1"
//	[node_flags]                # flags every node's config gets
//	samples = 200
//	[[coordinators]]
//	id = "c1"
//	host = "10.0.0.1"           # raft_port 7001, quic_port 4431, http_port 8081
//	[[sites]]
//	id = "site-01"
//	flags = { regime-mix = "4,1,1,1" }
//	[[operators]]
//	name = "admin"
//	role = "admin"
//
// ParseProject refuses unknown keys, duplicate ids and addresses, ports out
// of range and flags that would override what a kit manages.
//
// # Kits
//
// Provision writes, under the output folder:
//
//	coordinators/ID/  keys/ (Ed25519 + age), logkey/ (the audit log key),
//	                  peers.txt, api-keys.toml (SHA-256 digests only),
//	                  cluster.txt, coordinator.toml, start.sh, a systemd unit
//	sites/ID/         keys/ (Ed25519), cluster.txt (pinned coordinator keys,
//	                  age recipients, origin), node.toml, enrolment.txt,
//	                  start.sh, a systemd unit
//	operators/NAME/   ctl.toml (server, API key, pinned coordinator keys),
//	                  log.vkey, enrolment.txt, cluster.txt
//	enrolment.txt     every site's "<id> mfn-ed25519:<key>", the
//	                  --node-keys list of "mfn audit verify-log"
//	.provision/       the generated secrets (mode 0700)
//
// The config files are the --config TOML of the mfn command (keys are flag
// names, paths relative to the kit folder, which start.sh changes to), so
// a kit runs as it is: "MFN=./mfn kits/coordinators/c1/start.sh".
// Every kit has a MANIFEST.sha256 in sha256sum's format; VerifyKit checks
// it and ReadSiteKit reads the id and key an operator enrols from a site's
// public files ("mfn ctl nodes enroll --kit DIR").
//
// # Keys
//
// Secrets (private keys, the log key, API keys, ctl.toml) are written with
// mode 0600 in folders of mode 0700. A participant whose entry gives
// public_key (and age_recipient, for a coordinator) brought its own keys:
// its kit holds only the public halves, and the private ones never leave
// its machine. An operator may likewise give key_sha256 of a key of its own.
//
// # Re-running
//
// The secrets generated on the first run are kept in .provision and read
// back, so a second run with the same project renders the same bytes and
// changes nothing. A file that would change is refused (ConflictError)
// unless Options.Force, with two exceptions that never lose information: a
// file whose new content only appends to the old one (a list of sites or
// API keys that grew: AddSite then Provision needs no force) and the
// manifest of a kit written without conflict. Every write is atomic.
package provision
