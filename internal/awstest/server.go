// Package awstest is a local HTTP server that speaks the wire protocols of
// the AWS services pglmon calls: the RDS Query API (form-encoded requests,
// XML replies), Secrets Manager (JSON 1.1 with X-Amz-Target) and CloudWatch
// (Smithy RPC v2 CBOR, cloudwatch.go). Tests reach
// it through the SDK's BaseEndpoint. It keeps state (instances, parameter
// groups, snapshots, secrets, metrics), checks that each request is SigV4-signed for
// the right service and region, and can throttle or fail on demand.
package awstest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Instance is a fake DB instance.
type Instance struct {
	Identifier     string
	Status         string
	Engine         string // postgres (AddInstance) or aurora-postgresql
	EngineVersion  string
	ParameterGroup string
	ApplyStatus    string
	// Class is its instance class; AddInstance makes it db.r6g.large.
	Class string
	// AllocatedGiB and MaxAllocatedGiB are its storage and the storage
	// autoscaling limit (0: off); AddInstance allocates 100 GiB.
	AllocatedGiB, MaxAllocatedGiB int
	// rebootPolls counts describes left before a reboot completes.
	rebootPolls int
}

type logFile struct {
	name    string
	written int64 // unix milliseconds
	text    string
}

// Snapshot is a fake DB snapshot.
type Snapshot struct {
	Identifier, Instance, Status string
	polls                        int
}

// Server is the fake AWS endpoint.
type Server struct {
	URL    string
	Region string

	mu        sync.Mutex
	instances map[string]*Instance
	groups    map[string]map[string]string // group -> parameter -> value
	families  map[string]string            // group -> its DBParameterGroupFamily
	// upgrades: engine version -> the versions RDS upgrades it to;
	// orderable: engine version -> the instance classes offered with it.
	upgrades  map[string][]string
	orderable map[string][]string
	snapshots map[string]*Snapshot
	secrets   map[string]string
	logs      map[string][]logFile   // instance -> its log files, oldest first
	metrics   map[string][]Datapoint // "namespace/metric/instance" -> datapoints, oldest first
	// metricQueries describes each GetMetricData query received.
	metricQueries []string
	throttle      int
	fail          map[string]int  // action -> remaining InternalFailure replies
	deny          map[string]bool // actions the credentials may not call
	calls         []string
	authErrs      []string
	// RebootPolls and SnapshotPolls are how many status reads a reboot or a
	// snapshot stays in progress for.
	RebootPolls, SnapshotPolls int
	// PageSize is how many parameters DescribeDBParameters, and log files
	// DescribeDBLogFiles without MaxRecords, return per page.
	PageSize int
}

// New starts a server for region; it stops when the test ends.
func New(t testing.TB, region string) *Server {
	s := &Server{Region: region, instances: map[string]*Instance{}, groups: map[string]map[string]string{},
		families: map[string]string{}, upgrades: map[string][]string{}, orderable: map[string][]string{},
		snapshots: map[string]*Snapshot{}, secrets: map[string]string{}, fail: map[string]int{}, deny: map[string]bool{}, logs: map[string][]logFile{}, metrics: map[string][]Datapoint{},
		RebootPolls: 2, SnapshotPolls: 2, PageSize: 3}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// RemoveLog deletes the instance's log file name, as RDS does past
// rds.log_retention_period.
func (s *Server) RemoveLog(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs[id] = slices.DeleteFunc(s.logs[id], func(lf logFile) bool { return lf.name == name })
}

// SetLog makes text the content of the instance's log file name, written
// at unix milliseconds written (added, or replaced).
func (s *Server) SetLog(id, name string, written int64, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, lf := range s.logs[id] {
		if lf.name == name {
			s.logs[id][i] = logFile{name, written, text}
			return
		}
	}
	s.logs[id] = append(s.logs[id], logFile{name, written, text})
}

// AddInstance adds an available instance using parameter group group, with
// the group's parameters (created if new; a name starting "default." is a
// default group RDS refuses to modify).
func (s *Server) AddInstance(id, engineVersion, group string, params map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id] = &Instance{Identifier: id, Status: "available", Engine: "postgres", EngineVersion: engineVersion, ParameterGroup: group, ApplyStatus: "in-sync", Class: "db.r6g.large", AllocatedGiB: 100}
	if _, ok := s.groups[group]; !ok {
		s.addGroup(group, Family(engineVersion), params)
	}
}

// Family is the DB parameter group family of a PostgreSQL engine version
// (16.4 -> postgres16).
func Family(engineVersion string) string {
	return "postgres" + strings.SplitN(engineVersion, ".", 2)[0]
}

func (s *Server) addGroup(name, family string, params map[string]string) {
	g := map[string]string{"max_connections": "100", "work_mem": "4096", "rds.force_ssl": "1", "wal_sender_timeout": "30000"}
	for k, v := range params {
		g[k] = v
	}
	s.groups[name] = g
	s.families[name] = family
}

// AddParameterGroup adds (or replaces) a DB parameter group of family with
// these parameters besides a few of RDS's defaults.
func (s *Server) AddParameterGroup(name, family string, params map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addGroup(name, family, params)
}

// SetUpgradeTargets makes RDS offer upgrades from engine version from to
// each of to (DescribeDBEngineVersions' ValidUpgradeTarget).
func (s *Server) SetUpgradeTargets(from string, to ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upgrades[from] = to
}

// SetOrderable makes RDS offer these instance classes with engine version
// version (DescribeOrderableDBInstanceOptions).
func (s *Server) SetOrderable(version string, classes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orderable[version] = classes
}

// SetSecret stores a secret string under name (and its ARN).
func (s *Server) SetSecret(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name] = value
	s.secrets[s.arn(name)] = value
}

func (s *Server) arn(name string) string {
	return "arn:aws:secretsmanager:" + s.Region + ":123456789012:secret:" + name
}

type injection int

const (
	none injection = iota
	throttled
	failed
	denied
)

// injected consumes one queued throttling or failure for action (s.mu held).
func (s *Server) injected(action string) injection {
	switch {
	case s.deny[action]:
		return denied
	case s.throttle > 0:
		s.throttle--
		return throttled
	case s.fail[action] > 0:
		s.fail[action]--
		return failed
	}
	return none
}

// Deny makes every call of action fail as IAM refuses it (AccessDenied).
func (s *Server) Deny(action string) { s.mu.Lock(); s.deny[action] = true; s.mu.Unlock() }

// serviceErrors are how a service says it throttles, fails or denies.
type serviceErrors struct {
	throttle, internal, internalMsg string
	deny                            string
	denyStatus                      int
	iam                             string // the IAM action prefix
}

var (
	rdsErrors        = serviceErrors{"Throttling", "InternalFailure", "An internal error occurred.", "AccessDenied", 403, "rds"}
	secretsErrors    = serviceErrors{"ThrottlingException", "InternalServiceError", "An error occurred on the server side.", "AccessDeniedException", 400, "secretsmanager"}
	cloudWatchErrors = serviceErrors{"Throttling", "InternalServiceError", "An internal error occurred.", "AccessDenied", 403, "cloudwatch"}
)

// failInjected answers with the throttling, failure or denial queued for
// action, in the service's words through write; it reports whether it did
// (s.mu held).
func (s *Server) failInjected(action string, e serviceErrors, write func(status int, code, msg string)) bool {
	switch s.injected(action) {
	case throttled:
		write(400, e.throttle, "Rate exceeded")
	case failed:
		write(500, e.internal, e.internalMsg)
	case denied:
		write(e.denyStatus, e.deny, "User: arn:aws:iam::123456789012:user/pglmon is not authorized to perform: "+e.iam+":"+action)
	default:
		return false
	}
	return true
}

// Throttle makes the next n requests fail with the service's throttling error.
func (s *Server) Throttle(n int) { s.mu.Lock(); s.throttle = n; s.mu.Unlock() }

// Fail makes the next n calls of action fail with a 500 InternalFailure.
func (s *Server) Fail(action string, n int) { s.mu.Lock(); s.fail[action] = n; s.mu.Unlock() }

// Calls lists the actions received, throttled ones included, in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Count is how many times action was called.
func (s *Server) Count(action string) int {
	n := 0
	for _, c := range s.Calls() {
		if c == action {
			n++
		}
	}
	return n
}

// AuthErrors lists requests that were not properly signed.
func (s *Server) AuthErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authErrs...)
}

// Param returns a parameter's value in a group.
func (s *Server) Param(group, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[group][name]
}

// SetParam changes a parameter as a person would in the console: the
// instances using the group become pending-reboot.
func (s *Server) SetParam(group, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group][name] = value
	for _, in := range s.instances {
		if in.ParameterGroup == group {
			in.ApplyStatus = "pending-reboot"
		}
	}
}

// Reboot reboots an instance as a person would (counted as a RebootDBInstance call).
func (s *Server) Reboot(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "RebootDBInstance")
	in := s.instances[id]
	in.Status, in.rebootPolls = "rebooting", s.RebootPolls
}

// SetEngine sets an instance's engine (aurora-postgresql: an Aurora instance).
func (s *Server) SetEngine(id, engine string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id].Engine = engine
}

// SetStorage sets an instance's allocated storage and autoscaling limit (GiB).
func (s *Server) SetStorage(id string, allocated, maxAllocated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id].AllocatedGiB, s.instances[id].MaxAllocatedGiB = allocated, maxAllocated
}

// SetStatus sets an instance's status as RDS would (storage-full, stopped, ...).
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[id].Status = status
}

// Instance returns a copy of an instance.
func (s *Server) Instance(id string) Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.instances[id]
}

// Snapshot returns a copy of a snapshot, and whether it exists.
func (s *Server) Snapshot(id string) (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snapshots[id]
	if !ok {
		return Snapshot{}, false
	}
	return *sn, true
}

// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261124/eu-west-1/rds/aws4_request, SignedHeaders=..., Signature=hex
var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/([a-z]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$`)

func (s *Server) checkAuth(r *http.Request, service string) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	switch {
	case m == nil:
		s.authErrs = append(s.authErrs, "unsigned or malformed Authorization header")
	case m[3] != s.Region || m[4] != service:
		s.authErrs = append(s.authErrs, fmt.Sprintf("signed for %s/%s, want %s/%s", m[3], m[4], s.Region, service))
	case r.Header.Get("X-Amz-Date") == "":
		s.authErrs = append(s.authErrs, "no X-Amz-Date")
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if strings.HasPrefix(r.URL.Path, "/service/") {
		s.serveRPCv2(w, r, body)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveSecrets(w, r, target, body)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.serveRDS(w, r, form)
}

// ---- RDS Query API ----

const rdsNS = "http://rds.amazonaws.com/doc/2014-10-31/"

type rdsError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	NS      string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func writeRDSError(w http.ResponseWriter, status int, code, msg string) {
	e := rdsError{NS: rdsNS, RequestID: "req-err"}
	e.Error.Type, e.Error.Code, e.Error.Message = "Sender", code, msg
	if status >= 500 {
		e.Error.Type = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(e)
}

func (s *Server) serveRDS(w http.ResponseWriter, r *http.Request, f url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	action := f.Get("Action")
	s.calls = append(s.calls, action)
	s.checkAuth(r, "rds")
	if f.Get("Version") != "2014-10-31" {
		writeRDSError(w, 400, "InvalidParameterValue", "unsupported API version "+f.Get("Version"))
		return
	}
	if s.failInjected(action, rdsErrors, func(status int, code, msg string) { writeRDSError(w, status, code, msg) }) {
		return
	}
	var inner string
	switch action {
	case "DescribeDBInstances":
		id := f.Get("DBInstanceIdentifier")
		in, ok := s.instances[id]
		if !ok {
			writeRDSError(w, 404, "DBInstanceNotFound", "DBInstance "+id+" not found.")
			return
		}
		storage := fmt.Sprintf("<AllocatedStorage>%d</AllocatedStorage>", in.AllocatedGiB)
		if in.MaxAllocatedGiB > 0 {
			storage += fmt.Sprintf("<MaxAllocatedStorage>%d</MaxAllocatedStorage>", in.MaxAllocatedGiB)
		}
		if in.Status == "rebooting" {
			if in.rebootPolls--; in.rebootPolls < 0 {
				in.Status = "available"
				in.ApplyStatus = "in-sync"
			}
		}
		inner = fmt.Sprintf(`<DBInstances><DBInstance><DBInstanceIdentifier>%s</DBInstanceIdentifier><DBInstanceStatus>%s</DBInstanceStatus>`+
			`<Engine>%s</Engine><EngineVersion>%s</EngineVersion><DBInstanceClass>%s</DBInstanceClass>`+storage+`<DBParameterGroups><DBParameterGroup><DBParameterGroupName>%s</DBParameterGroupName>`+
			`<ParameterApplyStatus>%s</ParameterApplyStatus></DBParameterGroup></DBParameterGroups></DBInstance></DBInstances>`,
			esc(in.Identifier), esc(in.Status), esc(in.Engine), esc(in.EngineVersion), esc(in.Class), esc(in.ParameterGroup), esc(in.ApplyStatus))
	case "DescribeDBParameterGroups":
		name := f.Get("DBParameterGroupName")
		if _, ok := s.groups[name]; !ok {
			writeRDSError(w, 404, "DBParameterGroupNotFound", "DBParameterGroup not found: "+name)
			return
		}
		inner = fmt.Sprintf("<DBParameterGroups><DBParameterGroup><DBParameterGroupName>%s</DBParameterGroupName><DBParameterGroupFamily>%s</DBParameterGroupFamily>"+
			"<Description>test</Description></DBParameterGroup></DBParameterGroups>", esc(name), esc(s.families[name]))
	case "DescribeDBEngineVersions":
		// As RDS: an engine version it does not know gives an empty list.
		var b strings.Builder
		b.WriteString("<DBEngineVersions>")
		if v := f.Get("EngineVersion"); f.Get("Engine") == "postgres" && (s.upgrades[v] != nil || s.orderable[v] != nil) {
			fmt.Fprintf(&b, "<DBEngineVersion><Engine>postgres</Engine><EngineVersion>%s</EngineVersion><DBParameterGroupFamily>%s</DBParameterGroupFamily><ValidUpgradeTarget>", esc(v), Family(v))
			for _, t := range s.upgrades[v] {
				fmt.Fprintf(&b, "<UpgradeTarget><Engine>postgres</Engine><EngineVersion>%s</EngineVersion><IsMajorVersionUpgrade>%t</IsMajorVersionUpgrade><AutoUpgrade>false</AutoUpgrade></UpgradeTarget>",
					esc(t), Family(t) != Family(v))
			}
			b.WriteString("</ValidUpgradeTarget></DBEngineVersion>")
		}
		b.WriteString("</DBEngineVersions>")
		inner = b.String()
	case "DescribeOrderableDBInstanceOptions":
		var b strings.Builder
		b.WriteString("<OrderableDBInstanceOptions>")
		for _, c := range s.orderable[f.Get("EngineVersion")] {
			if want := f.Get("DBInstanceClass"); f.Get("Engine") == "postgres" && (want == "" || want == c) {
				fmt.Fprintf(&b, "<OrderableDBInstanceOption><Engine>postgres</Engine><EngineVersion>%s</EngineVersion><DBInstanceClass>%s</DBInstanceClass></OrderableDBInstanceOption>",
					esc(f.Get("EngineVersion")), esc(c))
			}
		}
		b.WriteString("</OrderableDBInstanceOptions>")
		inner = b.String()
	case "DescribeDBParameters":
		name := f.Get("DBParameterGroupName")
		g, ok := s.groups[name]
		if !ok {
			writeRDSError(w, 404, "DBParameterGroupNotFound", "DBParameterGroup not found: "+name)
			return
		}
		names := make([]string, 0, len(g))
		for k := range g {
			names = append(names, k)
		}
		sort.Strings(names)
		start, _ := strconv.Atoi(f.Get("Marker"))
		end := min(start+s.PageSize, len(names))
		var b strings.Builder
		b.WriteString("<Parameters>")
		for _, k := range names[start:end] {
			fmt.Fprintf(&b, "<Parameter><ParameterName>%s</ParameterName>", esc(k))
			if g[k] != "" {
				fmt.Fprintf(&b, "<ParameterValue>%s</ParameterValue>", esc(g[k]))
			}
			b.WriteString("<ApplyType>static</ApplyType><IsModifiable>true</IsModifiable></Parameter>")
		}
		b.WriteString("</Parameters>")
		if end < len(names) {
			fmt.Fprintf(&b, "<Marker>%d</Marker>", end)
		}
		inner = b.String()
	case "ModifyDBParameterGroup":
		name := f.Get("DBParameterGroupName")
		g, ok := s.groups[name]
		if !ok {
			writeRDSError(w, 404, "DBParameterGroupNotFound", "DBParameterGroup not found: "+name)
			return
		}
		if strings.HasPrefix(name, "default.") {
			writeRDSError(w, 400, "InvalidParameterValue", "The parameter group "+name+" can't be modified.")
			return
		}
		for i := 1; f.Has(fmt.Sprintf("Parameters.Parameter.%d.ParameterName", i)); i++ {
			p := fmt.Sprintf("Parameters.Parameter.%d.", i)
			if f.Get(p+"ApplyMethod") != "pending-reboot" && f.Get(p+"ApplyMethod") != "immediate" {
				writeRDSError(w, 400, "InvalidParameterCombination", "ApplyMethod is required")
				return
			}
			if g[f.Get(p+"ParameterName")] != f.Get(p+"ParameterValue") {
				g[f.Get(p+"ParameterName")] = f.Get(p + "ParameterValue")
				for _, in := range s.instances {
					if in.ParameterGroup == name {
						in.ApplyStatus = "pending-reboot"
					}
				}
			}
		}
		inner = "<DBParameterGroupName>" + esc(name) + "</DBParameterGroupName>"
	case "RebootDBInstance":
		id := f.Get("DBInstanceIdentifier")
		in, ok := s.instances[id]
		if !ok {
			writeRDSError(w, 404, "DBInstanceNotFound", "DBInstance "+id+" not found.")
			return
		}
		if in.Status != "available" {
			writeRDSError(w, 400, "InvalidDBInstanceState", "DB instance is not in available state.")
			return
		}
		in.Status, in.rebootPolls = "rebooting", s.RebootPolls
		if in.ApplyStatus == "pending-reboot" {
			in.ApplyStatus = "applying"
		}
		inner = fmt.Sprintf("<DBInstance><DBInstanceIdentifier>%s</DBInstanceIdentifier><DBInstanceStatus>rebooting</DBInstanceStatus></DBInstance>", esc(id))
	case "CreateDBSnapshot":
		id, snap := f.Get("DBInstanceIdentifier"), f.Get("DBSnapshotIdentifier")
		if _, ok := s.instances[id]; !ok {
			writeRDSError(w, 404, "DBInstanceNotFound", "DBInstance "+id+" not found.")
			return
		}
		if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,254}$`).MatchString(snap) || strings.Contains(snap, "--") || strings.HasSuffix(snap, "-") {
			writeRDSError(w, 400, "InvalidParameterValue", "The parameter DBSnapshotIdentifier is not a valid identifier.")
			return
		}
		if _, ok := s.snapshots[snap]; ok {
			writeRDSError(w, 400, "DBSnapshotAlreadyExists", "Cannot create the snapshot because a snapshot with the identifier "+snap+" already exists.")
			return
		}
		s.snapshots[snap] = &Snapshot{Identifier: snap, Instance: id, Status: "creating", polls: s.SnapshotPolls}
		inner = fmt.Sprintf("<DBSnapshot><DBSnapshotIdentifier>%s</DBSnapshotIdentifier><Status>creating</Status></DBSnapshot>", esc(snap))
	case "DescribeDBLogFiles":
		id := f.Get("DBInstanceIdentifier")
		if _, ok := s.instances[id]; !ok {
			writeRDSError(w, 404, "DBInstanceNotFound", "DBInstance "+id+" not found.")
			return
		}
		// The filters and the paging of the API reference: FilenameContains,
		// FileLastWritten (ms), FileSize; at most MaxRecords (default: the
		// server's PageSize) a page, the Marker naming where the next starts.
		var match []logFile
		since, _ := strconv.ParseInt(f.Get("FileLastWritten"), 10, 64)
		larger, _ := strconv.Atoi(f.Get("FileSize"))
		for _, lf := range s.logs[id] {
			if strings.Contains(lf.name, f.Get("FilenameContains")) && lf.written >= since && len(lf.text) >= larger {
				match = append(match, lf)
			}
		}
		max, start := s.PageSize, 0
		if m, err := strconv.Atoi(f.Get("MaxRecords")); err == nil && m > 0 {
			max = m
		}
		if m := f.Get("Marker"); m != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(m, "page-"))
			if err != nil || n < 0 || n > len(match) {
				writeRDSError(w, 400, "InvalidParameterValue", "The parameter Marker is not valid.")
				return
			}
			start = n
		}
		end := min(start+max, len(match))
		var b strings.Builder
		b.WriteString("<DescribeDBLogFiles>")
		for _, lf := range match[start:end] {
			fmt.Fprintf(&b, "<DescribeDBLogFilesDetails><LogFileName>%s</LogFileName><LastWritten>%d</LastWritten><Size>%d</Size></DescribeDBLogFilesDetails>",
				esc(lf.name), lf.written, len(lf.text))
		}
		b.WriteString("</DescribeDBLogFiles>")
		if end < len(match) {
			fmt.Fprintf(&b, "<Marker>page-%d</Marker>", end)
		}
		inner = b.String()
	case "DownloadDBLogFilePortion":
		id, name := f.Get("DBInstanceIdentifier"), f.Get("LogFileName")
		var text string
		found := false
		for _, lf := range s.logs[id] {
			if lf.name == name {
				text, found = lf.text, true
			}
		}
		if !found {
			writeRDSError(w, 404, "DBLogFileNotFoundFault", "DBLogFile "+name+" not found.")
			return
		}
		// Markers are "0:<byte offset>"; the one after a portion is where it
		// ended. Without a Marker, NumberOfLines is the last lines of the
		// file (and the Marker its end); with one, the lines after it.
		n, nerr := strconv.Atoi(f.Get("NumberOfLines"))
		size, pending := len(text), false
		switch m := f.Get("Marker"); {
		case m == "" && nerr == nil:
			lines := strings.SplitAfter(text, "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			text = strings.Join(lines[max(len(lines)-n, 0):], "")
		case m != "":
			from := 0
			if off, ok := strings.CutPrefix(m, "0:"); ok {
				from, _ = strconv.Atoi(off)
			} else if m != "0" {
				writeRDSError(w, 400, "InvalidParameterValue", "Invalid marker "+m)
				return
			}
			text = text[min(from, len(text)):]
			if nerr == nil {
				lines := strings.SplitAfter(text, "\n")
				if lines[len(lines)-1] == "" {
					lines = lines[:len(lines)-1]
				}
				if len(lines) > n {
					text, pending = strings.Join(lines[:n], ""), true
				}
			}
			size = from + len(text)
		}
		inner = fmt.Sprintf("<LogFileData>%s</LogFileData><AdditionalDataPending>%t</AdditionalDataPending><Marker>0:%d</Marker>", esc(text), pending, size)
	case "DescribeDBSnapshots":
		snap := f.Get("DBSnapshotIdentifier")
		sn, ok := s.snapshots[snap]
		if !ok {
			writeRDSError(w, 404, "DBSnapshotNotFound", "DBSnapshot "+snap+" not found.")
			return
		}
		if sn.Status == "creating" {
			if sn.polls--; sn.polls < 0 {
				sn.Status = "available"
			}
		}
		inner = fmt.Sprintf("<DBSnapshots><DBSnapshot><DBSnapshotIdentifier>%s</DBSnapshotIdentifier><DBInstanceIdentifier>%s</DBInstanceIdentifier><Status>%s</Status></DBSnapshot></DBSnapshots>",
			esc(sn.Identifier), esc(sn.Instance), esc(sn.Status))
	default:
		writeRDSError(w, 400, "InvalidAction", "Could not find operation "+action)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>req-%d</RequestId></ResponseMetadata></%sResponse>`,
		action, rdsNS, action, inner, action, len(s.calls), action)
}

func esc(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// ---- Secrets Manager (JSON 1.1) ----

func writeJSONError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (s *Server) serveSecrets(w http.ResponseWriter, r *http.Request, target string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	action := strings.TrimPrefix(target, "secretsmanager.")
	s.calls = append(s.calls, action)
	s.checkAuth(r, "secretsmanager")
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") {
		writeJSONError(w, 400, "SerializationException", "wrong content type")
		return
	}
	if s.failInjected(action, secretsErrors, func(status int, code, msg string) { writeJSONError(w, status, code, msg) }) {
		return
	}
	if action != "GetSecretValue" {
		writeJSONError(w, 400, "UnknownOperationException", "unknown operation "+target)
		return
	}
	var in struct{ SecretId string }
	if err := json.Unmarshal(body, &in); err != nil || in.SecretId == "" {
		writeJSONError(w, 400, "InvalidParameterException", "SecretId is required")
		return
	}
	v, ok := s.secrets[in.SecretId]
	if !ok {
		writeJSONError(w, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	name := in.SecretId
	if strings.HasPrefix(name, "arn:") {
		name = name[strings.LastIndex(name, ":")+1:]
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ARN": s.arn(name), "Name": name, "SecretString": v, "VersionId": fmt.Sprintf("v-%d", len(s.calls)),
		"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9,
	})
}

// Credentials are the fake access key the tests sign with.
const (
	AccessKeyID     = "AKIAPGLMONTEST000001"
	SecretAccessKey = "pglmon-test-secret-access-key-do-not-log"
)

// Env points the SDK's default credential chain at fake static keys (and
// away from the host's own files and instance metadata) for this test, and
// returns an `aws:` section whose endpoints are this server.
func (s *Server) Env(t testing.TB) AWSConfig {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/pglmon-test")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/pglmon-test")
	return AWSConfig{Region: s.Region, Endpoint: s.URL}
}

// AWSConfig is what a test puts in its configuration's `aws:` section.
type AWSConfig struct{ Region, Endpoint string }

// YAML renders the `aws:` section.
func (a AWSConfig) YAML() string {
	return fmt.Sprintf("aws:\n  region: %s\n  max_attempts: 3\n  endpoints:\n    rds: %s\n    secretsmanager: %s\n    cloudwatch: %s\n", a.Region, a.Endpoint, a.Endpoint, a.Endpoint)
}
