package v1alpha1

// HTTPPaginationMode is how an HTTP resource's list is paged.
// +kubebuilder:validation:Enum=None;Page;Offset;Cursor;LinkHeader
type HTTPPaginationMode string

// HTTPTimeFormat is how a time is written in a query parameter.
// +kubebuilder:validation:Enum=RFC3339;UnixSeconds;UnixMillis
type HTTPTimeFormat string

// HTTPEndpoint configures a JSON REST API; each entity's collection names one of its resources.
// +kubebuilder:validation:XValidation:rule="(has(self.auth.bearerTokenSecretRef) ? 1 : 0) + (has(self.auth.basicAuthSecretRef) ? 1 : 0) + (has(self.auth.apiKey) ? 1 : 0) + (has(self.auth.oauth2) ? 1 : 0) <= 1",message="auth: set at most one of bearerTokenSecretRef, basicAuthSecretRef, apiKey and oauth2"
type HTTPEndpoint struct {
	// baseURL is the API's base URL, for example "https://crm.example.com/api/v2"; resource paths
	// are appended to it. The Secrets it names (except oauth2's) must list it (or a prefix of it)
	// in their allowed destinations.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#@]+(/[^?#]*)?$`
	BaseURL string `json:"baseURL"`

	// auth says how requests authenticate. Without it they carry no credentials.
	// +optional
	Auth HTTPAuth `json:"auth,omitzero"`

	// resources are the API's lists of items; entities[].source or entities[].target collection
	// names one of them.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Resources []HTTPResource `json:"resources"`

	// requestsPerSecond caps the requests one cycle Job sends to the API, whatever its users; 0
	// means no cap. A 429 answer is waited out (its Retry-After) either way.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`

	// timeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Timeout string `json:"timeout,omitempty"`

	// maxPages bounds one list: a list that has not ended after so many pages fails the read, so
	// that a server whose pages never end cannot hold a cycle forever.
	// +optional
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxPages int32 `json:"maxPages,omitempty"`
}

// HTTPAuth is how an HTTP endpoint's requests authenticate: set at most one.
type HTTPAuth struct {
	// bearerTokenSecretRef names the Secret key holding a token sent as "Authorization: Bearer".
	// +optional
	BearerTokenSecretRef *SecretKeyReference `json:"bearerTokenSecretRef,omitempty"`

	// basicAuthSecretRef names the Secret holding the user name and password for HTTP basic auth.
	// +optional
	BasicAuthSecretRef *CredentialsSecretReference `json:"basicAuthSecretRef,omitempty"`

	// apiKey sends a key from a Secret in a request header.
	// +optional
	APIKey *HTTPAPIKey `json:"apiKey,omitempty"`

	// oauth2 gets an access token with the OAuth2 client credentials grant, keeps it until it
	// nears expiry, and gets a new one when the API refuses it.
	// +optional
	OAuth2 *HTTPOAuth2 `json:"oauth2,omitempty"`
}

// HTTPAPIKey is an API key sent in a header.
type HTTPAPIKey struct {
	// header carries the key, for example "X-API-Key".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[-!#$%&'*+.^_|~0-9A-Za-z]+$`
	Header string `json:"header"`

	// secretRef names the Secret key holding the API key.
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`
}

// HTTPOAuth2 is an OAuth2 client using the client credentials grant (RFC 6749 section 4.4).
type HTTPOAuth2 struct {
	// tokenURL is the authorization server's token endpoint. The client Secret must list it (or a
	// prefix of it) in its allowed destinations: that is where the client secret is sent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#@]+(/[^?#]*)?$`
	TokenURL string `json:"tokenURL"`

	// clientSecretRef names the Secret holding the client ID (usernameKey) and the client secret
	// (passwordKey).
	// +required
	ClientSecretRef CredentialsSecretReference `json:"clientSecretRef"`

	// scopes are asked for with the token.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	Scopes []string `json:"scopes,omitempty"`
}

// HTTPResource is one list of items of an HTTP API and how to read and write them. Paths are
// relative to baseURL. In paths, {email}, {name} and {attributes.<key>} stand for the user's
// identity values, escaped as a path segment; {id} stands for the item's ID in item paths.
// +kubebuilder:validation:XValidation:rule="!has(self.pagination) || self.pagination.mode != 'Page' || has(self.pagination.pageParam)",message="pagination.pageParam is needed with mode Page"
// +kubebuilder:validation:XValidation:rule="!has(self.pagination) || self.pagination.mode != 'Offset' || (has(self.pagination.offsetParam) && has(self.pagination.sizeParam))",message="pagination.offsetParam and sizeParam are needed with mode Offset"
// +kubebuilder:validation:XValidation:rule="!has(self.pagination) || self.pagination.mode != 'Cursor' || (has(self.pagination.cursorParam) && has(self.pagination.nextCursor))",message="pagination.cursorParam and nextCursor are needed with mode Cursor"
type HTTPResource struct {
	// name is what an entity's collection field refers to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// listPath lists the user's items, for example "/contacts" or "/users/{email}/contacts".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#]*$`
	ListPath string `json:"listPath"`

	// listQuery are query parameters of the list, for example {name: owner, value: "{email}"}; a
	// value may hold the identity placeholders.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	ListQuery []HTTPQueryParam `json:"listQuery,omitempty"`

	// itemsAt is the JSON pointer of the array of items in a list's answer, for example "/data";
	// empty when the answer is the array.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	ItemsAt string `json:"itemsAt,omitempty"`

	// itemPath is one item's path, holding {id}; empty means listPath/{id}.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#]*\{id\}[^?#]*$`
	ItemPath string `json:"itemPath,omitempty"`

	// itemAt is the JSON pointer of the item in an item's answer (a GET, a create, an update), for
	// example "/data"; empty when the answer is the item.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	ItemAt string `json:"itemAt,omitempty"`

	// idField is the field (a JSON pointer, or a top-level property name) holding the item's ID,
	// which the API assigns on create. The collection's keyFields must be [idField].
	// +optional
	// +kubebuilder:default=id
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	IDField string `json:"idField,omitempty"`

	// pagination says how the list is paged.
	// +optional
	Pagination *HTTPPagination `json:"pagination,omitempty"`

	// create is the method and path of a create; its answer is the created item, or names it in
	// a Location header. Defaults: POST listPath.
	// +optional
	Create *HTTPRequest `json:"create,omitempty"`

	// update is the method and path of an update (path with {id}). PATCH sends the changed
	// top-level properties, PUT the whole item. Defaults: PATCH itemPath.
	// +optional
	Update *HTTPRequest `json:"update,omitempty"`

	// delete is the method and path of a delete (path with {id}). Defaults: DELETE itemPath.
	// +optional
	Delete *HTTPRequest `json:"delete,omitempty"`

	// modifiedSince is the query parameter asking for the items modified since a time, when the
	// API has one: cycles then read only what changed (the collection's modifiedField must be set).
	// +optional
	ModifiedSince *HTTPModifiedSince `json:"modifiedSince,omitempty"`

	// originField holds chainsync's origin token on the items it creates (a property the API
	// keeps, such as "/externalId"), written with the create, so a create cut off by a crash is
	// recognised without matchOn. Without it the policy needs matchOn.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	OriginField string `json:"originField,omitempty"`
}

// HTTPQueryParam is one query parameter.
type HTTPQueryParam struct {
	// name of the parameter.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`

	// value of the parameter; {email}, {name} and {attributes.<key>} stand for the user's values.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
}

// HTTPRequest is a write's method and path.
type HTTPRequest struct {
	// method is the HTTP method.
	// +optional
	// +kubebuilder:validation:Enum=POST;PUT;PATCH;DELETE
	Method string `json:"method,omitempty"`

	// path is relative to baseURL.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#]*$`
	Path string `json:"path,omitempty"`
}

// HTTPPagination says how a list is paged. A read stops at an empty page, at the total the API
// gives (totalHeader or totalAt), or at the last cursor or Link; a list that repeats an item or a
// page, or that does not end within maxPages, fails the read.
type HTTPPagination struct {
	// mode is None (one request), Page (page numbers in pageParam), Offset (offsets in
	// offsetParam), Cursor (the cursor at nextCursor, sent back in cursorParam) or LinkHeader (the
	// rel="next" link of the Link header, which must stay on baseURL's host).
	// +required
	Mode HTTPPaginationMode `json:"mode"`

	// pageParam carries the page number (Page; LinkHeader's first request when set).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PageParam string `json:"pageParam,omitempty"`

	// offsetParam carries the offset of the page's first item (Offset).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	OffsetParam string `json:"offsetParam,omitempty"`

	// cursorParam carries the cursor of the next page (Cursor).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	CursorParam string `json:"cursorParam,omitempty"`

	// nextCursor is the JSON pointer of the next page's cursor in an answer (Cursor); a page
	// without one is the last.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/.*$`
	NextCursor string `json:"nextCursor,omitempty"`

	// sizeParam carries pageSize.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SizeParam string `json:"sizeParam,omitempty"`

	// pageSize is how many items a page asks for.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	PageSize int32 `json:"pageSize,omitempty"`

	// firstPage is the number of the first page (Page).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	FirstPage *int32 `json:"firstPage,omitempty"`

	// totalHeader is the answer header giving the number of items in the list, for example
	// "X-Total-Count".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	TotalHeader string `json:"totalHeader,omitempty"`

	// totalAt is the JSON pointer of the number of items in a list's answer, for example
	// "/meta/total".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/.*$`
	TotalAt string `json:"totalAt,omitempty"`
}

// HTTPModifiedSince is the query parameter asking for the items modified since a time.
type HTTPModifiedSince struct {
	// param is the parameter's name, for example "updated_since".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Param string `json:"param"`

	// format writes the time: RFC3339 (UTC with milliseconds), UnixSeconds or UnixMillis.
	// +optional
	// +kubebuilder:default=RFC3339
	Format HTTPTimeFormat `json:"format,omitempty"`

	// overlap is read again before each cycle's start, for the server's clocks and for changes
	// being written as the cycle began; items read twice are no change.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	Overlap string `json:"overlap,omitempty"`
}

// secretUses lists the Secret keys the endpoint reads: the API's credentials go to baseURL with
// every request, the OAuth2 client's to the token URL only.
func (h *HTTPEndpoint) secretUses(field string) []SecretUse {
	var uses []SecretUse
	a := h.Auth
	if ref := a.BearerTokenSecretRef; ref != nil {
		uses = append(uses, SecretUse{*ref, field + ".auth.bearerTokenSecretRef", h.BaseURL})
	}
	if c := a.BasicAuthSecretRef; c != nil {
		f := field + ".auth.basicAuthSecretRef"
		uses = append(uses,
			SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, f, h.BaseURL},
			SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, f, h.BaseURL})
	}
	if k := a.APIKey; k != nil {
		uses = append(uses, SecretUse{k.SecretRef, field + ".auth.apiKey.secretRef", h.BaseURL})
	}
	if o := a.OAuth2; o != nil {
		c := o.ClientSecretRef
		f := field + ".auth.oauth2.clientSecretRef"
		uses = append(uses,
			SecretUse{SecretKeyReference{Name: c.Name, Key: c.UsernameKey}, f, o.TokenURL},
			SecretUse{SecretKeyReference{Name: c.Name, Key: c.PasswordKey}, f, o.TokenURL})
	}
	return uses
}
