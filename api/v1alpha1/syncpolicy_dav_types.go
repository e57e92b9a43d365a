package v1alpha1

// DAVComponent is the kind of iCalendar object a CalDAV collection's items are.
// +kubebuilder:validation:Enum=VEVENT;VTODO
type DAVComponent string

// DAVOriginMode is where the carddav and caldav connectors keep the proof of their creates.
// +kubebuilder:validation:Enum=Property;None
type DAVOriginMode string

// DAVEndpoint configures a CardDAV server (the carddav block: address books) or a CalDAV server
// (the caldav block: calendars and task lists); each entity's collection names one of its
// collections. A user's collections are found from the user's identity: in the user's home set
// (RFC 6352 addressbook-home-set, RFC 4791 calendar-home-set) under principal, or at an explicit
// path.
// +kubebuilder:validation:XValidation:rule="has(self.bearerTokenSecretRef) != has(self.basicAuthSecretRef)",message="set exactly one of bearerTokenSecretRef and basicAuthSecretRef"
type DAVEndpoint struct {
	// url is the server's base URL, for example "https://dav.example.com/"; principal and the
	// collections' paths are resolved against it. The Secrets it names must list it (or a prefix of
	// it) in their allowed destinations.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#@]+(/[^?#]*)?$`
	URL string `json:"url"`

	// principal is the path of the user's principal, with {email}, {name} or {attributes.<key>}
	// standing for the user's identity (escaped as one path segment), for example "/{email}/":
	// an account allowed into every user's collections (a service account, delegated access) then
	// reaches each user's. Without it, the principal is the account's own (current-user-principal):
	// a policy whose users each have their own Secret, or a single user.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#]*$`
	Principal string `json:"principal,omitempty"`

	// bearerTokenSecretRef names the Secret key holding the bearer token sent with every request.
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`

	// basicAuthSecretRef names the Secret holding the user name and password for HTTP basic auth
	// (an app password, on servers that have them).
	// +optional
	BasicAuthSecretRef *CredentialsSecretReference `json:"basicAuthSecretRef,omitempty"`

	// collections say how each of a user's collections is found; entities[].source or
	// entities[].target collection names one of them.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Collections []DAVCollection `json:"collections"`

	// origin is where a create is proven after a crash: Property writes chainsync's origin token
	// into an X-CHAINSYNC-ORIGIN property of the vCards and iCalendar objects it creates; None keeps
	// no proof, and the policy then needs matchOn.
	// +optional
	// +kubebuilder:default=Property
	Origin DAVOriginMode `json:"origin,omitempty"`

	// timeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Timeout string `json:"timeout,omitempty"`
}

// DAVCollection is one of a user's address books, calendars or task lists.
// +kubebuilder:validation:XValidation:rule="!(has(self.path) && has(self.displayName))",message="set path or displayName, not both: path names the collection, displayName picks it from the user's home set"
type DAVCollection struct {
	// name is what an entity's collection field refers to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// path names the user's collection explicitly, with {email}, {name} or {attributes.<key>} for
	// the user's identity (escaped as one path segment), for example "/dav/{email}/contacts/".
	// Without it, the collection is found in the user's home set: the one with displayName, or the
	// only one of its kind.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#]*$`
	Path string `json:"path,omitempty"`

	// displayName picks, among the collections of the user's home set, the one with this display
	// name (or this last path segment).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DisplayName string `json:"displayName,omitempty"`

	// component is the kind of iCalendar object the items are, for caldav: VEVENT (events, the
	// default) or VTODO (tasks). A carddav collection's items are vCards; leave it unset there.
	// +optional
	Component DAVComponent `json:"component,omitempty"`
}
