package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorType names the kind of system an endpoint is.
// +kubebuilder:validation:Enum=csv;sqlite;postgres;scim;ldap;http;carddav;caldav
type ConnectorType string

const (
	// CSVConnector reads and writes a full-extract CSV file.
	CSVConnector ConnectorType = "csv"
	// SQLiteConnector reads and writes tables of an SQLite database file.
	SQLiteConnector ConnectorType = "sqlite"
	// PostgresConnector reads and writes tables or views of a PostgreSQL database.
	PostgresConnector ConnectorType = "postgres"
	// SCIMConnector reads and writes the Users of a SCIM 2.0 service provider.
	SCIMConnector ConnectorType = "scim"
	// LDAPConnector reads and writes the entries of an LDAP directory.
	LDAPConnector ConnectorType = "ldap"
	// HTTPConnector reads and writes the items of a JSON REST API, described declaratively.
	HTTPConnector ConnectorType = "http"
	// CardDAVConnector reads and writes the vCards of each user's address book on a CardDAV server.
	CardDAVConnector ConnectorType = "carddav"
	// CalDAVConnector reads and writes the events or tasks of each user's calendar on a CalDAV server.
	CalDAVConnector ConnectorType = "caldav"
)

// Direction says which way changes flow.
// +kubebuilder:validation:Enum=OneWay;TwoWay
type Direction string

const (
	// OneWay copies changes from the source to the target only.
	OneWay Direction = "OneWay"
	// TwoWay copies changes both ways; conflictResolution settles items changed on both sides.
	TwoWay Direction = "TwoWay"
)

// ConflictResolution is the rule for an item changed on both sides since the last sync.
// +kubebuilder:validation:Enum=SourceWins;TargetWins;NewestWins;Manual
type ConflictResolution string

const (
	// SourceWins keeps the source's version.
	SourceWins ConflictResolution = "SourceWins"
	// TargetWins keeps the target's version.
	TargetWins ConflictResolution = "TargetWins"
	// NewestWins keeps the version with the later modification time; ties go to the source.
	NewestWins ConflictResolution = "NewestWins"
	// Manual changes neither side and reports the conflict every cycle until a person resolves it.
	Manual ConflictResolution = "Manual"
)

// PostgresSSLMode is libpq's sslmode.
// +kubebuilder:validation:Enum=disable;allow;prefer;require;verify-ca;verify-full
type PostgresSSLMode string

// SyncPolicySpec says what to sync between two endpoints, and how.
// +kubebuilder:validation:XValidation:rule="self.source.name != self.target.name",message="source.name and target.name must differ: they identify the two systems in the transaction records"
// +kubebuilder:validation:XValidation:rule="self.conflictResolution != 'NewestWins' || self.entities.all(e, has(e.source.modifiedField) && has(e.target.modifiedField))",message="conflictResolution NewestWins needs source.modifiedField and target.modifiedField on every entity"
// +kubebuilder:validation:XValidation:rule="self.source.connector in ['sqlite', 'postgres'] || self.entities.all(e, !has(e.source.where))",message="entities[].source.where needs an SQL connector (sqlite or postgres); use scope with the others"
// +kubebuilder:validation:XValidation:rule="self.target.connector in ['sqlite', 'postgres'] || self.entities.all(e, !has(e.target.where))",message="entities[].target.where needs an SQL connector (sqlite or postgres); use scope with the others"
// +kubebuilder:validation:XValidation:rule="self.entities.all(e, !has(e.target.where) || has(e.target.scope))",message="entities[].target.where needs target.scope too: rows the cycle creates get the scope's values, and without them a created row is not selected by where, so it would be created again every cycle"
// +kubebuilder:validation:XValidation:rule="self.direction != 'TwoWay' || self.entities.all(e, !has(e.source.where) || has(e.source.scope))",message="entities[].source.where needs source.scope too in TwoWay: rows the cycle creates in the source get the scope's values, and without them a created row is not selected by where, so it would be created again every cycle"
type SyncPolicySpec struct {
	// source is the endpoint changes come from. In TwoWay, changes also flow back into it.
	// +required
	Source Endpoint `json:"source"`

	// target is the endpoint changes go to.
	// +required
	Target Endpoint `json:"target"`

	// entities are the kinds of item to sync (contacts, accounts, events...), each a collection on
	// the source mapped to a collection on the target.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(e, self.exists_one(f, f.name == e.name))",message="entity names must be unique"
	Entities []Entity `json:"entities"`

	// direction is OneWay (source to target) or TwoWay.
	// +optional
	// +kubebuilder:default=OneWay
	Direction Direction `json:"direction,omitempty"`

	// conflictResolution settles an item changed on both sides since the last sync (TwoWay only):
	// SourceWins, TargetWins, NewestWins (by modification time) or Manual (reported, left alone).
	// +optional
	// +kubebuilder:default=SourceWins
	ConflictResolution ConflictResolution `json:"conflictResolution,omitempty"`

	// schedule says how often each user's cycle runs. New users and requested cycles run at once.
	// +optional
	// +kubebuilder:default={interval: "15m"}
	Schedule Schedule `json:"schedule,omitzero"`

	// deletes says whether deletions propagate and how many one cycle may make unapproved.
	// +optional
	// +kubebuilder:default={propagate: false}
	Deletes DeletePolicy `json:"deletes,omitzero"`

	// dryRun computes and reports what each cycle would do and writes nothing, to either endpoint
	// or to the transaction records.
	// +optional
	// +kubebuilder:default=false
	DryRun bool `json:"dryRun,omitempty"`

	// suspend stops new cycles; running ones finish.
	// +optional
	// +kubebuilder:default=false
	Suspend bool `json:"suspend,omitempty"`

	// jobTemplate shapes the Kubernetes Jobs that run the cycles.
	// +optional
	// +kubebuilder:default={usersPerJob: 50}
	JobTemplate CycleJobTemplate `json:"jobTemplate,omitzero"`

	// store is where the transaction records live. Policies that sync the same endpoints should
	// share a store, so that moving a user between them never creates items twice.
	// +required
	Store RecordStore `json:"store"`
}

// Endpoint is one of the two systems a policy syncs.
// +kubebuilder:validation:XValidation:rule="(has(self.csv) ? 1 : 0) + (has(self.sqlite) ? 1 : 0) + (has(self.postgres) ? 1 : 0) + (has(self.scim) ? 1 : 0) + (has(self.ldap) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.carddav) ? 1 : 0) + (has(self.caldav) ? 1 : 0) == 1",message="set exactly one of csv, sqlite, postgres, scim, ldap, http, carddav or caldav"
// +kubebuilder:validation:XValidation:rule="self.connector != 'csv' || has(self.csv)",message="connector is csv, so the csv block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'sqlite' || has(self.sqlite)",message="connector is sqlite, so the sqlite block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'postgres' || has(self.postgres)",message="connector is postgres, so the postgres block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'scim' || has(self.scim)",message="connector is scim, so the scim block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'ldap' || has(self.ldap)",message="connector is ldap, so the ldap block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'http' || has(self.http)",message="connector is http, so the http block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'carddav' || has(self.carddav)",message="connector is carddav, so the carddav block must be set"
// +kubebuilder:validation:XValidation:rule="self.connector != 'caldav' || has(self.caldav)",message="connector is caldav, so the caldav block must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.carddav) || self.carddav.collections.all(c, !has(c.component))",message="carddav.collections[].component: an address book's items are vCards; component is for caldav"
type Endpoint struct {
	// name identifies the system in the transaction records. Keep it stable: policies that name the
	// same endpoints share records, and renaming one makes the next cycle start from scratch.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// connector is the kind of system: csv, sqlite, postgres, scim, ldap, http, carddav or caldav. The block of the same name configures it.
	// +required
	Connector ConnectorType `json:"connector"`

	// csv configures a directory of full-extract CSV files, one file per entity collection.
	// +optional
	CSV *CSVEndpoint `json:"csv,omitempty"`

	// sqlite configures an SQLite database file.
	// +optional
	SQLite *SQLiteEndpoint `json:"sqlite,omitempty"`

	// postgres configures a PostgreSQL database.
	// +optional
	Postgres *PostgresEndpoint `json:"postgres,omitempty"`

	// scim configures a SCIM 2.0 service provider (an application's provisioning API).
	// +optional
	SCIM *SCIMEndpoint `json:"scim,omitempty"`

	// ldap configures an LDAP directory (OpenLDAP, Active Directory, FreeIPA).
	// +optional
	LDAP *LDAPEndpoint `json:"ldap,omitempty"`

	// http configures a JSON REST API (a web application's API), described declaratively.
	// +optional
	HTTP *HTTPEndpoint `json:"http,omitempty"`

	// carddav configures a CardDAV server (iCloud, Nextcloud, Fastmail, Radicale, SOGo): each user's
	// address books.
	// +optional
	CardDAV *DAVEndpoint `json:"carddav,omitempty"`

	// caldav configures a CalDAV server: each user's calendars (events) and task lists (tasks).
	// +optional
	CalDAV *DAVEndpoint `json:"caldav,omitempty"`
}

// VolumePath is a file or directory on a PersistentVolumeClaim that the cycle Jobs mount.
type VolumePath struct {
	// claimName is the PersistentVolumeClaim holding the path. Empty means the policy's record store claim.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClaimName string `json:"claimName,omitempty"`

	// path is relative to the root of the claim, for example "exports/hr".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="path must be relative to the claim and must not contain '..'"
	Path string `json:"path"`
}

// CSVEndpoint configures a directory of CSV files; each entity's collection is a file name in it.
type CSVEndpoint struct {
	// directory holds the CSV files.
	// +required
	Directory VolumePath `json:"directory"`

	// delimiter separates fields.
	// +optional
	// +kubebuilder:default=","
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1
	Delimiter string `json:"delimiter,omitempty"`

	// comment, when set, starts lines to ignore.
	// +optional
	// +kubebuilder:validation:MaxLength=1
	Comment string `json:"comment,omitempty"`

	// encoding of the files.
	// +optional
	// +kubebuilder:default=utf-8
	// +kubebuilder:validation:Enum=utf-8;utf-16le;utf-16be;latin1;windows-1252
	Encoding string `json:"encoding,omitempty"`
}

// SQLiteEndpoint configures an SQLite database file; each entity's collection is a table in it.
type SQLiteEndpoint struct {
	// file is the database file.
	// +required
	File VolumePath `json:"file"`
}

// LDAPEndpoint configures an LDAP directory; each entity's collection names one of its collections.
// +kubebuilder:validation:XValidation:rule="!has(self.startTLS) || !self.startTLS || self.url.startsWith('ldap://')",message="startTLS is for ldap:// URLs; ldaps:// is TLS already"
type LDAPEndpoint struct {
	// url is the directory's ldap://host[:port] or ldaps://host[:port].
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^ldaps?://[^/?#]+/?$`
	URL string `json:"url"`

	// startTLS upgrades an ldap:// connection to TLS before binding. With neither it nor ldaps://,
	// the bind password crosses the network in clear.
	// +optional
	// +kubebuilder:default=false
	StartTLS bool `json:"startTLS,omitempty"`

	// caSecretRef names a Secret key holding the PEM certificate authority the server's certificate
	// is checked against; without it, the system's roots.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// bindSecretRef names the Secret holding the bind DN (usernameKey) and its password
	// (passwordKey). Without it the connection is anonymous.
	// +optional
	BindSecretRef *CredentialsSecretReference `json:"bindSecretRef,omitempty"`

	// baseDN is searched for every collection's entries, for example "dc=example,dc=com".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN"`

	// collections say how each collection's entries are found and created; entities[].source or
	// entities[].target collection names one of them.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Collections []LDAPCollection `json:"collections"`

	// timeout bounds connecting and each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Timeout string `json:"timeout,omitempty"`

	// pageSize is how many entries one page of a search asks for (RFC 2696 paged results).
	// +optional
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	PageSize int32 `json:"pageSize,omitempty"`
}

// LDAPCollection is one class of entries in a directory.
// +kubebuilder:validation:XValidation:rule="!has(self.originObjectClass) || has(self.originAttribute)",message="originObjectClass needs originAttribute"
type LDAPCollection struct {
	// name is what an entity's collection field refers to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// objectClasses select the collection's entries (an entry must have them all) and are given to
	// the entries chainsync creates, for example ["inetOrgPerson"].
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z][-A-Za-z0-9]*$`
	ObjectClasses []string `json:"objectClasses"`

	// rdnAttribute names created entries (uid=jdoe,<parentDN>); a write that changes its value
	// renames the entry (modrdn), which keeps its entryUUID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z][-A-Za-z0-9]*$`
	RDNAttribute string `json:"rdnAttribute"`

	// parentDN is where created entries go; empty means baseDN.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	ParentDN string `json:"parentDN,omitempty"`

	// filter is an extra LDAP filter (RFC 4515) an entry must match to be one of the user's, with
	// @email, @name and @attr_<key> standing for the user's identity values, escaped so that no
	// value can widen it. Created entries get only the scope's values: filter on nothing else.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Filter string `json:"filter,omitempty"`

	// originAttribute holds chainsync's origin token on the entries it creates, written in the same
	// add, so a create cut off by a crash is recognised without matchOn: chainsyncOrigin, from
	// chainsync's schema (chainsync.ldif). Without it the policy needs matchOn.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z][-A-Za-z0-9]*$`
	OriginAttribute string `json:"originAttribute,omitempty"`

	// originObjectClass is the auxiliary class that allows originAttribute (chainsyncSynced),
	// given to created entries only.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z][-A-Za-z0-9]*$`
	OriginObjectClass string `json:"originObjectClass,omitempty"`

	// binaryAttributes are attributes whose values are octets: base64 text in the policy's fields,
	// raw bytes in the directory. Attributes of a binary syntax in the directory's schema (jpegPhoto,
	// userCertificate, objectGUID, any octet string) and those named with the ;binary option are
	// binary without being listed; list the others, for example on a directory whose schema the
	// bind DN cannot read.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^([A-Za-z][-A-Za-z0-9]*|[0-9]+(\.[0-9]+)+)(;[-A-Za-z0-9]+)*$`
	BinaryAttributes []string `json:"binaryAttributes,omitempty"`
}

// SCIMDeleteMode is what a propagated delete does to a SCIM User.
// +kubebuilder:validation:Enum=Delete;Deactivate
type SCIMDeleteMode string

// SCIMOriginMode is where the scim connector keeps the proof of its creates.
// +kubebuilder:validation:Enum=ExternalID;None
type SCIMOriginMode string

// SCIMEndpoint configures a SCIM 2.0 service provider; each entity's collection is a resource
// type (Users).
// +kubebuilder:validation:XValidation:rule="has(self.bearerTokenSecretRef) != has(self.basicAuthSecretRef)",message="set exactly one of bearerTokenSecretRef and basicAuthSecretRef"
type SCIMEndpoint struct {
	// baseURL is the service provider's SCIM base URL, for example "https://app.example.com/scim/v2".
	// The Secrets it names must list it (or a prefix of it) in their allowed destinations.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/]+`
	BaseURL string `json:"baseURL"`

	// bearerTokenSecretRef names the Secret key holding the bearer token sent with every request.
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`

	// basicAuthSecretRef names the Secret holding the user name and password for HTTP basic auth.
	// +optional
	BasicAuthSecretRef *CredentialsSecretReference `json:"basicAuthSecretRef,omitempty"`

	// deletes is what a propagated delete does: Delete removes the User; Deactivate sets active to
	// false and keeps it, after which it is no longer read (do not map active then).
	// +optional
	// +kubebuilder:default=Delete
	Deletes SCIMDeleteMode `json:"deletes,omitempty"`

	// origin is where a create is proven after a crash: ExternalID writes chainsync's origin token
	// (which holds the source's key of the person) into externalId of the Users it creates; None
	// keeps no proof, and the policy then needs matchOn.
	// +optional
	// +kubebuilder:default=ExternalID
	Origin SCIMOriginMode `json:"origin,omitempty"`
}

// PostgresEndpoint configures a PostgreSQL database; each entity's collection is a table or view.
type PostgresEndpoint struct {
	// host is the server's DNS name or address.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// port is the server's TCP port.
	// +optional
	// +kubebuilder:default=5432
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// database is the database to connect to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Database string `json:"database"`

	// schema qualifies collections that name no schema.
	// +optional
	// +kubebuilder:default=public
	// +kubebuilder:validation:MaxLength=63
	Schema string `json:"schema,omitempty"`

	// credentialsSecretRef names the Secret holding the user name and password.
	// +required
	CredentialsSecretRef CredentialsSecretReference `json:"credentialsSecretRef"`

	// sslMode is libpq's sslmode.
	// +optional
	// +kubebuilder:default=require
	SSLMode PostgresSSLMode `json:"sslMode,omitempty"`

	// caSecretRef names a Secret key holding the PEM certificate authority that verify-ca and
	// verify-full check the server against.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`
}

// CredentialsSecretReference names a Secret in the policy's namespace and the keys in it.
type CredentialsSecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// usernameKey is the key holding the user name.
	// +optional
	// +kubebuilder:default=username
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	UsernameKey string `json:"usernameKey,omitempty"`

	// passwordKey is the key holding the password.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	PasswordKey string `json:"passwordKey,omitempty"`
}

// SecretKeyReference names one key of a Secret in the policy's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key in the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Entity is one kind of item synced between a source collection and a target collection.
// +kubebuilder:validation:XValidation:rule="self.fields.all(f, self.fields.exists_one(g, g.target == f.target))",message="two field mappings write the same target field"
// +kubebuilder:validation:XValidation:rule="!has(self.matchOn) || self.matchOn.all(m, self.fields.exists(f, f.source == m))",message="every matchOn field must be the source of a field mapping"
type Entity struct {
	// name identifies the entity in status and in the transaction records, for example "contacts".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// source is the entity's collection on the source endpoint.
	// +required
	Source Collection `json:"source"`

	// target is the entity's collection on the target endpoint.
	// +required
	Target Collection `json:"target"`

	// fields maps source fields to target fields. Fields not mapped are neither read nor written,
	// and changing the mapping makes the next cycle a Complete one for this entity.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Fields []FieldMapping `json:"fields"`

	// matchOn lists source fields (of the mappings) whose values link an item that already exists
	// on both sides at a user's first cycle, instead of creating it twice. Two or more candidates
	// for one item are quarantined and reported.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=128
	MatchOn []string `json:"matchOn,omitempty"`
}

// Collection is a table, view or file on one endpoint, and how to find one user's items in it.
type Collection struct {
	// collection is the table or view (sqlite, postgres) or the file name (csv).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Collection string `json:"collection"`

	// keyFields identify an item within the collection; several make a composite key.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	KeyFields []string `json:"keyFields"`

	// modifiedField holds each item's last modification time. With it, cycles read only what
	// changed since the last one, and NewestWins can compare versions.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ModifiedField string `json:"modifiedField,omitempty"`

	// scope selects one user's items: every listed field must equal the named identity value.
	// Without scope and where, every item of the collection belongs to every user of the policy.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Scope []ScopeMatch `json:"scope,omitempty"`

	// where is an SQL condition selecting one user's items (sqlite, postgres). Identity values are
	// bound as parameters, never pasted into the SQL: @email, @name and @attr_<key>.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Where string `json:"where,omitempty"`
}

// ScopeMatch requires a field to equal one of the user's identity values.
type ScopeMatch struct {
	// field is the field compared.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Field string `json:"field"`

	// identity is the identity value it must equal: "email", "name" or "attributes.<key>".
	// +required
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:Pattern=`^(email|name|attributes\.[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$`
	Identity string `json:"identity"`
}

// FieldMapping copies one source field to one target field (and back, in TwoWay).
type FieldMapping struct {
	// source field name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Source string `json:"source"`

	// target field name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Target string `json:"target"`
}

// Schedule says when cycles run: a fixed interval (spread by jitter) or a cron expression.
// +kubebuilder:validation:XValidation:rule="has(self.interval) != has(self.cron)",message="set either schedule.interval or schedule.cron, not both"
type Schedule struct {
	// interval between the end of one cycle and the start of the next, for example "15m" or "1h30m".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	Interval string `json:"interval,omitempty"`

	// cron is a five-field cron expression ("0 */6 * * *") or a macro such as "@daily", in UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( \S+){4})$`
	Cron string `json:"cron,omitempty"`

	// completeEvery is how often a user's cycle is a Complete one, comparing everything on both
	// sides with the records: incremental reads cannot see deletions, so deletes are found then.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="completeEvery must be at least 1m"
	CompleteEvery string `json:"completeEvery,omitempty"`

	// jitterPercent spreads users' interval cycles by up to this share of the interval, so that
	// thousands of users do not all start together.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	JitterPercent int32 `json:"jitterPercent,omitempty"`
}

// DeletePolicy says whether an item deleted on one side is deleted on the other, and caps how many
// deletes one cycle may make before a person approves them.
type DeletePolicy struct {
	// propagate deletes on the other side the items deleted on one side. When false, such items
	// are left alone and only unlinked in the records.
	// +optional
	// +kubebuilder:default=false
	Propagate bool `json:"propagate,omitempty"`

	// maxCount holds back a cycle's deletes when there are more than this many, whatever minCount
	// says.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MaxCount *int32 `json:"maxCount,omitempty"`

	// maxPercent holds back a cycle's deletes when they are more than minCount and exceed this
	// percentage of the user's synced items. A held-back cycle deletes nothing and waits for the
	// approve-deletes annotation.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxPercent *int32 `json:"maxPercent,omitempty"`

	// minCount is how many deletes a cycle may make whatever maxPercent says. Ten percent of a
	// user with nine items is less than one item, so without it every delete of a small user would
	// wait for approval; a broken export or scope that loses most of a user's items still deletes
	// more than minCount at once and is held back. 0 applies maxPercent to any number of deletes.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinCount *int32 `json:"minCount,omitempty"`
}

// CycleJobTemplate shapes the Kubernetes Jobs that run a policy's cycles.
type CycleJobTemplate struct {
	// usersPerJob is how many users one Job cycles; 10,000 users never mean 10,000 Jobs.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	UsersPerJob int32 `json:"usersPerJob,omitempty"`

	// gatherWindow is how long the first user due waits for others before a Job with fewer than
	// usersPerJob users is launched. Users come due one by one (each one's cycle ends at its own
	// time, each one moves along a chain when its cycle does); a longer window fills Jobs, so a
	// policy's thousands of users cost a few pods instead of one each, for a little latency.
	// +optional
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('10m')",message="gatherWindow must be at most 10m"
	GatherWindow string `json:"gatherWindow,omitempty"`

	// parallelism is how many pods share one Job's users (an Indexed Job).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Parallelism int32 `json:"parallelism,omitempty"`

	// concurrency is how many users one pod cycles at the same time.
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Concurrency int32 `json:"concurrency,omitempty"`

	// resources of the cycle container. The default requests 100m CPU and 256Mi of memory and
	// limits memory to 1Gi, so a cycle cannot take a node's memory; raise it for large exports.
	// +optional
	// +kubebuilder:default={requests: {cpu: "100m", memory: "256Mi"}, limits: {memory: "1Gi"}}
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// serviceAccountName runs the cycle pods. It must carry the label sync.chainsync.dev/cycle=true
	// (set by whoever administers the namespace), so a policy cannot run its Jobs as any other
	// account; it needs only to read the policy and its users and patch SyncUser status
	// (config/rbac's chainsync-cycle role). Secrets are mounted, not read through the API.
	// +optional
	// +kubebuilder:default=chainsync-cycle
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// backoffLimit is how often a failed cycle pod is retried.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds stops a cycle Job that runs longer; its users' cycles are retried on
	// schedule.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=60
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// ttlSecondsAfterFinished removes finished Jobs after this long.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// successfulJobsHistoryLimit is how many succeeded Jobs are kept.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SuccessfulJobsHistoryLimit *int32 `json:"successfulJobsHistoryLimit,omitempty"`

	// failedJobsHistoryLimit is how many failed Jobs are kept.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	FailedJobsHistoryLimit *int32 `json:"failedJobsHistoryLimit,omitempty"`
}

// RecordStore is the volume holding the transaction records.
type RecordStore struct {
	// claimName is the PersistentVolumeClaim mounted into every cycle Job.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ClaimName string `json:"claimName"`

	// subPath is a directory inside the claim, so several stores can share one volume.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(p, p == '..')",message="subPath must be relative to the claim and must not contain '..'"
	SubPath string `json:"subPath,omitempty"`
}

// UserCounts counts a policy's users by state.
type UserCounts struct {
	// assigned users are on this policy, directly or through a chain step.
	// +optional
	Assigned int32 `json:"assigned"`

	// syncing users are in a running cycle.
	// +optional
	Syncing int32 `json:"syncing"`

	// synced users' last cycle finished with no item errors.
	// +optional
	Synced int32 `json:"synced"`

	// failing users' last cycle failed or had item errors.
	// +optional
	Failing int32 `json:"failing"`
}

// SyncPolicyStatus is what the operator observed of a policy.
type SyncPolicyStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// users counts the policy's users by state.
	// +optional
	Users UserCounts `json:"users,omitempty"`

	// rejectedRows is how many rows of the policy's csv exports are no one's (malformed, with no
	// owner to tell), as its users' latest cycles read them. They fail no user; the record
	// store's exports/<policy>/<entity>.rejected.csv lists them with their lines.
	// +optional
	RejectedRows int32 `json:"rejectedRows,omitempty"`

	// lastCycleTime is when the latest cycle Job started.
	// +optional
	LastCycleTime *metav1.Time `json:"lastCycleTime,omitempty"`

	// nextCycleTime is when the next scheduled cycle is due.
	// +optional
	NextCycleTime *metav1.Time `json:"nextCycleTime,omitempty"`

	// lastHandledRequestedAt is the requested-at annotation value last acted on.
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`

	// activeJobs are the running cycle Jobs.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	ActiveJobs []string `json:"activeJobs,omitempty"`
}

// SyncPolicy says what to sync between two endpoints, one way or two, on what schedule, with which
// conflict rule and delete safety. Users are placed on it directly or through an OnboardingChain.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sp,categories=chainsync
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Synced",type=integer,JSONPath=`.status.users.synced`
// +kubebuilder:printcolumn:name="Assigned",type=integer,JSONPath=`.status.users.assigned`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what to sync and how.
	// +required
	Spec SyncPolicySpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status SyncPolicyStatus `json:"status,omitempty"`
}

// SyncPolicyList is a list of SyncPolicy.
// +kubebuilder:object:root=true
type SyncPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncPolicy{}, &SyncPolicyList{})
}
