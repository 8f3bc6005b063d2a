//! The only module of this crate with `unsafe`: thin wrappers over the raw
//! libnftnl calls that the safe `nftnl` 0.9.4 API lacks, plus the two socket
//! calls `mnl` 0.3.1 lacks.
//!
//! What needs `unsafe` and why it is sound:
//!
//! * **Expressions** ([`RawExpr`]): `nftnl_expr_alloc` + `nftnl_expr_set_*`
//!   on a freshly allocated, non-null expression. libnftnl copies every
//!   value (strings, byte data) into the expression, so our buffers may be
//!   freed afterwards. Ownership of the expression passes to the rule through
//!   `nftnl::Rule::add_expr` (the `Expression` contract).
//! * **Sets and elements** ([`RawSet`]): a `nftnl_set` we allocate, own and
//!   free exactly once in `Drop`. Elements are allocated, filled (libnftnl
//!   copies the key) and handed to the set with `nftnl_set_elem_add`, which
//!   takes ownership. Messages are written by `NlMsg::write`, whose contract
//!   (checked by `nftnl::Batch`) is that `buf` has room for
//!   `nft_nlmsg_maxsize()` bytes; element lists are always written through
//!   `nftnl_set_elems_nlmsg_build_payload_iter`, which stops at the 64 KiB
//!   attribute limit (the non-iterator variant overflows, see platform notes
//!   §2.6.3). The iterator is created from, and destroyed before, the set it
//!   walks ([`push_elems`] keeps both alive for the whole loop).
//! * **Requests** ([`request`]): headers and payloads are written into a
//!   zeroed, 8-byte aligned buffer of 8 KiB; requests only carry table, chain
//!   or set names (at most 256 bytes each), never elements.
//! * **Parsing** ([`parse_msg`]): each received message is first copied into
//!   an 8-byte aligned buffer whose length was checked against `nlmsg_len`,
//!   then handed to `nftnl_*_nlmsg_parse`, which validates attributes itself.
//!   Returned strings/data pointers are copied out before the object is freed.
//! * **`Send` for [`Sock`]**: the libmnl socket is an fd plus an address, with
//!   no thread-affine state, so an `Nft` may move to a worker thread.
//! * **Socket options and `sendmsg`** ([`Sock`]): plain syscalls on a valid
//!   netlink fd owned by `mnl::Socket`, with pointers to locals that outlive
//!   the call; the iovec array points into the batch pages, which outlive the
//!   call as well.

use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use nftnl::{MsgType, NlMsg, Rule};
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// An attribute value of a raw expression.
#[derive(Debug, Clone)]
pub(crate) enum Attr {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Str(CString),
    Data(Vec<u8>),
}

/// Any libnftnl expression, described by its name and attributes.
#[derive(Debug, Clone)]
pub(crate) struct RawExpr {
    pub name: &'static CStr,
    pub attrs: Vec<(u32, Attr)>,
}

fn alloc_or_abort<T>(p: *mut T) -> NonNull<T> {
    match NonNull::new(p) {
        Some(p) => p,
        // libnftnl returns NULL only when malloc fails; follow libstd.
        None => std::process::abort(),
    }
}

impl Expression for RawExpr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: the expression is freshly allocated and non-null; every
        // setter copies its value into the expression.
        unsafe {
            let e = alloc_or_abort(sys::nftnl_expr_alloc(self.name.as_ptr()));
            for (ty, v) in &self.attrs {
                let ty = *ty as u16;
                match v {
                    Attr::U8(x) => sys::nftnl_expr_set_u8(e.as_ptr(), ty, *x),
                    Attr::U16(x) => sys::nftnl_expr_set_u16(e.as_ptr(), ty, *x),
                    Attr::U32(x) => sys::nftnl_expr_set_u32(e.as_ptr(), ty, *x),
                    Attr::U64(x) => sys::nftnl_expr_set_u64(e.as_ptr(), ty, *x),
                    Attr::Str(s) => {
                        sys::nftnl_expr_set_str(e.as_ptr(), ty, s.as_ptr());
                    }
                    Attr::Data(d) => {
                        sys::nftnl_expr_set(
                            e.as_ptr(),
                            ty,
                            d.as_ptr().cast::<c_void>(),
                            d.len() as u32,
                        );
                    }
                }
            }
            e
        }
    }
}

/// A named set we own, with its (optional) elements.
pub(crate) struct RawSet {
    ptr: NonNull<sys::nftnl_set>,
    family: u16,
    len: usize,
}

/// Parameters of a new set.
pub(crate) struct SetParams<'a> {
    pub table: &'a CStr,
    pub name: &'a CStr,
    pub family: u16,
    pub id: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub flags: u32,
    /// Most elements (`NFTNL_SET_DESC_SIZE`); `None` = unbounded.
    pub size: Option<u32>,
}

impl RawSet {
    pub fn new(p: &SetParams<'_>) -> RawSet {
        // SAFETY: fresh non-null set; setters copy strings.
        unsafe {
            let s = alloc_or_abort(sys::nftnl_set_alloc());
            let sp = s.as_ptr();
            sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_FAMILY as u16, u32::from(p.family));
            sys::nftnl_set_set_str(sp, sys::NFTNL_SET_TABLE as u16, p.table.as_ptr());
            sys::nftnl_set_set_str(sp, sys::NFTNL_SET_NAME as u16, p.name.as_ptr());
            sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_ID as u16, p.id);
            sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_FLAGS as u16, p.flags);
            sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_KEY_TYPE as u16, p.key_type);
            sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_KEY_LEN as u16, p.key_len);
            if let Some(n) = p.size {
                sys::nftnl_set_set_u32(sp, sys::NFTNL_SET_DESC_SIZE as u16, n);
            }
            RawSet {
                ptr: s,
                family: p.family,
                len: 0,
            }
        }
    }

    /// A set object that only names a set (for element messages and dumps).
    pub fn reference(table: &CStr, name: &CStr, family: u16) -> RawSet {
        // SAFETY: as in `new`.
        unsafe {
            let s = alloc_or_abort(sys::nftnl_set_alloc());
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_FAMILY as u16, u32::from(family));
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
            RawSet {
                ptr: s,
                family,
                len: 0,
            }
        }
    }

    /// Appends an element; `flags` are `NFT_SET_ELEM_*`, `timeout_ms` 0 = none.
    pub fn add_elem(&mut self, key: &[u8], flags: u32, timeout_ms: u64) {
        // SAFETY: fresh element; the key is copied; the set takes ownership.
        unsafe {
            let e = alloc_or_abort(sys::nftnl_set_elem_alloc());
            sys::nftnl_set_elem_set(
                e.as_ptr(),
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr().cast::<c_void>(),
                key.len() as u32,
            );
            if flags != 0 {
                sys::nftnl_set_elem_set_u32(e.as_ptr(), sys::NFTNL_SET_ELEM_FLAGS as u16, flags);
            }
            if timeout_ms != 0 {
                sys::nftnl_set_elem_set_u64(
                    e.as_ptr(),
                    sys::NFTNL_SET_ELEM_TIMEOUT as u16,
                    timeout_ms,
                );
            }
            sys::nftnl_set_elem_add(self.ptr.as_ptr(), e.as_ptr());
        }
        self.len += 1;
    }

    pub fn elem_count(&self) -> usize {
        self.len
    }
}

impl Drop for RawSet {
    fn drop(&mut self) {
        // SAFETY: allocated by us, freed once.
        unsafe { sys::nftnl_set_free(self.ptr.as_ptr()) };
    }
}

// SAFETY: writes one NEWSET/DELSET message with the set's attributes only
// (no elements), far below nft_nlmsg_maxsize().
unsafe impl NlMsg for RawSet {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let (ty, flags) = match msg_type {
            MsgType::Add => (libc::NFT_MSG_NEWSET, libc::NLM_F_CREATE | libc::NLM_F_ACK),
            MsgType::Del => (libc::NFT_MSG_DELSET, libc::NLM_F_ACK),
        };
        // SAFETY: the caller guarantees buf's size (NlMsg contract).
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                ty as u16,
                self.family,
                flags as u16,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(h, self.ptr.as_ptr());
        }
    }
}

/// Flushes a set: DELSETELEM carrying only the table and set names. Built
/// from a [`RawSet::reference`] that holds no elements, so the non-iterator
/// payload builder writes names only (platform notes §2.6.3).
pub(crate) struct SetFlush<'a>(pub &'a RawSet);

// SAFETY: names only, far below nft_nlmsg_maxsize(); the set is checked to
// hold no elements before the payload builder runs.
unsafe impl NlMsg for SetFlush<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        if self.0.len != 0 {
            // Never write elements through the unbounded builder.
            std::process::abort();
        }
        // SAFETY: buf size per the NlMsg contract.
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                libc::NFT_MSG_DELSETELEM as u16,
                self.0.family,
                libc::NLM_F_ACK as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(h, self.0.ptr.as_ptr());
        }
    }
}

/// How element messages are flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemOp {
    /// NEWSETELEM with NLM_F_EXCL: an existing/overlapping element aborts.
    AddExcl,
    /// NEWSETELEM without NLM_F_EXCL: an identical existing element is
    /// accepted (and its timeout refreshed by kernels that support updates).
    AddOrUpdate,
    Del,
}

struct ElemChunk<'a> {
    set: &'a RawSet,
    iter: *mut sys::nftnl_set_elems_iter,
    op: ElemOp,
    ret: &'a Cell<i32>,
}

// SAFETY: the payload is written by the bounded iterator variant (64 KiB per
// message), within nft_nlmsg_maxsize().
unsafe impl NlMsg for ElemChunk<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        let (ty, flags) = match self.op {
            ElemOp::AddExcl => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK,
            ),
            ElemOp::AddOrUpdate => (
                libc::NFT_MSG_NEWSETELEM,
                libc::NLM_F_CREATE | libc::NLM_F_ACK,
            ),
            ElemOp::Del => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: buf size per the NlMsg contract; iter belongs to self.set.
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                ty as u16,
                self.set.family,
                flags as u16,
                seq,
            );
            self.ret
                .set(sys::nftnl_set_elems_nlmsg_build_payload_iter(h, self.iter));
        }
    }
}

/// Writes all elements of `set` into the batch (one message per 64 KiB);
/// returns the number of messages added.
pub(crate) fn push_elems(batch: &mut nftnl::Batch, set: &RawSet, op: ElemOp) -> usize {
    if set.len == 0 {
        return 0;
    }
    // SAFETY: the iterator walks `set`, which outlives it; destroyed below.
    let iter = unsafe { sys::nftnl_set_elems_iter_create(set.ptr.as_ptr()) };
    let Some(iter) = NonNull::new(iter) else {
        std::process::abort();
    };
    let ret = Cell::new(1);
    let mut n = 0;
    // SAFETY: iter valid until destroyed after the loop.
    while ret.get() > 0 && !unsafe { sys::nftnl_set_elems_iter_cur(iter.as_ptr()) }.is_null() {
        let chunk = ElemChunk {
            set,
            iter: iter.as_ptr(),
            op,
            ret: &ret,
        };
        batch.add(&chunk, MsgType::Add);
        n += 1;
    }
    // SAFETY: created above, destroyed once.
    unsafe { sys::nftnl_set_elems_iter_destroy(iter.as_ptr()) };
    n
}

/// Kinds of dump requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dump {
    Tables,
    Chains,
    Sets,
    /// Elements of the named set.
    Elems,
    Rules,
}

/// Builds one dump request for `table` (and `set` for [`Dump::Elems`]).
pub(crate) fn request(
    kind: Dump,
    family: u16,
    table: &CStr,
    set: Option<&CStr>,
    seq: u32,
) -> Vec<u8> {
    let mut buf = vec![0u64; 1024];
    let p = buf.as_mut_ptr().cast::<c_char>();
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP | libc::NLM_F_ACK) as u16;
    // SAFETY: 8 KiB zeroed aligned buffer; payloads hold names only (module doc).
    unsafe {
        match kind {
            Dump::Tables => {
                sys::nftnl_nlmsg_build_hdr(p, libc::NFT_MSG_GETTABLE as u16, family, flags, seq);
            }
            Dump::Chains => {
                let h = sys::nftnl_nlmsg_build_hdr(
                    p,
                    libc::NFT_MSG_GETCHAIN as u16,
                    family,
                    flags,
                    seq,
                );
                let c = alloc_or_abort(sys::nftnl_chain_alloc());
                sys::nftnl_chain_set_str(c.as_ptr(), sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
                sys::nftnl_chain_nlmsg_build_payload(h, c.as_ptr());
                sys::nftnl_chain_free(c.as_ptr());
            }
            Dump::Rules => {
                let h =
                    sys::nftnl_nlmsg_build_hdr(p, libc::NFT_MSG_GETRULE as u16, family, flags, seq);
                let r = alloc_or_abort(sys::nftnl_rule_alloc());
                sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
                sys::nftnl_rule_nlmsg_build_payload(h, r.as_ptr());
                sys::nftnl_rule_free(r.as_ptr());
            }
            Dump::Sets | Dump::Elems => {
                let ty = if kind == Dump::Sets {
                    libc::NFT_MSG_GETSET
                } else {
                    libc::NFT_MSG_GETSETELEM
                };
                let h = sys::nftnl_nlmsg_build_hdr(p, ty as u16, family, flags, seq);
                let s = alloc_or_abort(sys::nftnl_set_alloc());
                sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
                if let Some(name) = set {
                    sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
                }
                if kind == Dump::Sets {
                    sys::nftnl_set_nlmsg_build_payload(h, s.as_ptr());
                } else {
                    // The set holds no elements: only table and set names are written.
                    sys::nftnl_set_elems_nlmsg_build_payload(h, s.as_ptr());
                }
                sys::nftnl_set_free(s.as_ptr());
            }
        }
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let len = bytes
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0) as usize;
    bytes
        .get(..len.min(bytes.len()))
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// One element as dumped by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElemInfo {
    pub key: Vec<u8>,
    pub flags: u32,
    pub timeout_ms: u64,
    pub expiration_ms: u64,
}

/// One rule as dumped by the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RuleInfo {
    /// The table the rule is in (a chain dump lists every table's chains).
    pub table: String,
    pub chain: String,
    pub userdata: Vec<u8>,
    pub exprs: Vec<String>,
    pub counter: Option<(u64, u64)>,
}

/// A parsed dump message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Table(String),
    Chain {
        /// The kernel's chain dump ignores the table filter and lists the
        /// chains of every table of the family: callers must check this.
        table: String,
        name: String,
        hook: Option<u32>,
        prio: Option<i32>,
    },
    Set {
        table: String,
        name: String,
        flags: u32,
        key_len: u32,
        /// `size` (0 when the set has none).
        size: u32,
    },
    Elems {
        set: String,
        elems: Vec<ElemInfo>,
    },
    Rule(RuleInfo),
}

impl Parsed {
    /// Whether the object belongs to `table`. Tables and element lists are
    /// not filtered here; chains, sets and rules of other tables are not
    /// ours (the gateway's own firewall, e.g. Debian's `table inet filter`).
    pub(crate) fn in_table(&self, table: &str) -> bool {
        match self {
            Parsed::Chain { table: t, .. } | Parsed::Set { table: t, .. } => t == table,
            Parsed::Rule(r) => r.table == table,
            Parsed::Table(_) | Parsed::Elems { .. } => true,
        }
    }
}

fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl getters return NUL-terminated strings owned by the
    // object, which is still alive here; we copy immediately.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Parses one complete netlink message (`msg.len()` == `nlmsg_len`).
pub(crate) fn parse_msg(kind: Dump, msg: &[u8]) -> Option<Parsed> {
    if msg.len() < 16 {
        return None;
    }
    let mut aligned = vec![0u64; msg.len().div_ceil(8)];
    for (i, chunk) in msg.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        if let Some(slot) = aligned.get_mut(i) {
            *slot = u64::from_ne_bytes(w);
        }
    }
    let nlh = aligned.as_ptr().cast::<libc::nlmsghdr>();
    // SAFETY: nlh points to a complete, aligned copy of the message (module doc).
    unsafe {
        match kind {
            Dump::Tables => {
                let t = alloc_or_abort(sys::nftnl_table_alloc());
                let ok = sys::nftnl_table_nlmsg_parse(nlh, t.as_ptr()) >= 0;
                let name = cstr_to_string(sys::nftnl_table_get_str(
                    t.as_ptr(),
                    sys::NFTNL_TABLE_NAME as u16,
                ));
                sys::nftnl_table_free(t.as_ptr());
                ok.then_some(Parsed::Table(name))
            }
            Dump::Chains => {
                let c = alloc_or_abort(sys::nftnl_chain_alloc());
                let ok = sys::nftnl_chain_nlmsg_parse(nlh, c.as_ptr()) >= 0;
                let name = cstr_to_string(sys::nftnl_chain_get_str(
                    c.as_ptr(),
                    sys::NFTNL_CHAIN_NAME as u16,
                ));
                let table = cstr_to_string(sys::nftnl_chain_get_str(
                    c.as_ptr(),
                    sys::NFTNL_CHAIN_TABLE as u16,
                ));
                let hook = sys::nftnl_chain_is_set(c.as_ptr(), sys::NFTNL_CHAIN_HOOKNUM as u16)
                    .then(|| sys::nftnl_chain_get_u32(c.as_ptr(), sys::NFTNL_CHAIN_HOOKNUM as u16));
                let prio = sys::nftnl_chain_is_set(c.as_ptr(), sys::NFTNL_CHAIN_PRIO as u16)
                    .then(|| sys::nftnl_chain_get_s32(c.as_ptr(), sys::NFTNL_CHAIN_PRIO as u16));
                sys::nftnl_chain_free(c.as_ptr());
                ok.then_some(Parsed::Chain {
                    table,
                    name,
                    hook,
                    prio,
                })
            }
            Dump::Sets => {
                let s = alloc_or_abort(sys::nftnl_set_alloc());
                let ok = sys::nftnl_set_nlmsg_parse(nlh, s.as_ptr()) >= 0;
                let name = cstr_to_string(sys::nftnl_set_get_str(
                    s.as_ptr(),
                    sys::NFTNL_SET_NAME as u16,
                ));
                let table = cstr_to_string(sys::nftnl_set_get_str(
                    s.as_ptr(),
                    sys::NFTNL_SET_TABLE as u16,
                ));
                let flags = if sys::nftnl_set_is_set(s.as_ptr(), sys::NFTNL_SET_FLAGS as u16) {
                    sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_FLAGS as u16)
                } else {
                    0
                };
                let key_len = sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_KEY_LEN as u16);
                let size = if sys::nftnl_set_is_set(s.as_ptr(), sys::NFTNL_SET_DESC_SIZE as u16) {
                    sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_DESC_SIZE as u16)
                } else {
                    0
                };
                sys::nftnl_set_free(s.as_ptr());
                ok.then_some(Parsed::Set {
                    table,
                    name,
                    flags,
                    key_len,
                    size,
                })
            }
            Dump::Elems => {
                let s = alloc_or_abort(sys::nftnl_set_alloc());
                let ok = sys::nftnl_set_elems_nlmsg_parse(nlh, s.as_ptr()) >= 0;
                let name = cstr_to_string(sys::nftnl_set_get_str(
                    s.as_ptr(),
                    sys::NFTNL_SET_NAME as u16,
                ));
                let mut elems = Vec::new();
                let it = sys::nftnl_set_elems_iter_create(s.as_ptr());
                if !it.is_null() {
                    let mut e = sys::nftnl_set_elems_iter_next(it);
                    while !e.is_null() {
                        let mut len = 0u32;
                        let k =
                            sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                        let key = if k.is_null() {
                            Vec::new()
                        } else {
                            std::slice::from_raw_parts(k.cast::<u8>(), len as usize).to_vec()
                        };
                        let get64 = |attr: u32| {
                            if sys::nftnl_set_elem_is_set(e, attr as u16) {
                                sys::nftnl_set_elem_get_u64(e, attr as u16)
                            } else {
                                0
                            }
                        };
                        let flags =
                            if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
                                sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
                            } else {
                                0
                            };
                        elems.push(ElemInfo {
                            key,
                            flags,
                            timeout_ms: get64(sys::NFTNL_SET_ELEM_TIMEOUT),
                            expiration_ms: get64(sys::NFTNL_SET_ELEM_EXPIRATION),
                        });
                        e = sys::nftnl_set_elems_iter_next(it);
                    }
                    sys::nftnl_set_elems_iter_destroy(it);
                }
                sys::nftnl_set_free(s.as_ptr());
                ok.then_some(Parsed::Elems { set: name, elems })
            }
            Dump::Rules => {
                let r = alloc_or_abort(sys::nftnl_rule_alloc());
                let ok = sys::nftnl_rule_nlmsg_parse(nlh, r.as_ptr()) >= 0;
                let mut info = RuleInfo {
                    table: cstr_to_string(sys::nftnl_rule_get_str(
                        r.as_ptr(),
                        sys::NFTNL_RULE_TABLE as u16,
                    )),
                    chain: cstr_to_string(sys::nftnl_rule_get_str(
                        r.as_ptr(),
                        sys::NFTNL_RULE_CHAIN as u16,
                    )),
                    ..RuleInfo::default()
                };
                let mut len = 0u32;
                let ud =
                    sys::nftnl_rule_get_data(r.as_ptr(), sys::NFTNL_RULE_USERDATA as u16, &mut len);
                if !ud.is_null() {
                    info.userdata =
                        std::slice::from_raw_parts(ud.cast::<u8>(), len as usize).to_vec();
                }
                let it = sys::nftnl_expr_iter_create(r.as_ptr());
                if !it.is_null() {
                    let mut e = sys::nftnl_expr_iter_next(it);
                    while !e.is_null() {
                        let name =
                            cstr_to_string(sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16));
                        if name == "counter" {
                            info.counter = Some((
                                sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_PACKETS as u16),
                                sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_BYTES as u16),
                            ));
                        }
                        info.exprs.push(name);
                        e = sys::nftnl_expr_iter_next(it);
                    }
                    sys::nftnl_expr_iter_destroy(it);
                }
                sys::nftnl_rule_free(r.as_ptr());
                ok.then_some(Parsed::Rule(info))
            }
        }
    }
}

/// A netfilter netlink socket with forced buffer sizes and one-`sendmsg`
/// batch sending.
pub(crate) struct Sock {
    pub mnl: mnl::Socket,
}

// SAFETY: a `mnl_socket` is a file descriptor plus its bound address, with
// no thread-affine state; `Sock` has no interior sharing, so moving it to
// another thread (not sharing it: no `Sync`) is sound.
unsafe impl Send for Sock {}

impl Sock {
    pub fn open(buf_bytes: usize) -> io::Result<Sock> {
        let mnl = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let s = Sock { mnl };
        let size = libc::c_int::try_from(buf_bytes).unwrap_or(libc::c_int::MAX);
        s.setsockopt_int(libc::SO_SNDBUFFORCE, size)?;
        s.setsockopt_int(libc::SO_RCVBUFFORCE, size)?;
        let tv = libc::timeval {
            tv_sec: 60,
            tv_usec: 0,
        };
        // SAFETY: valid fd; tv is a local that outlives the call; size matches.
        let r = unsafe {
            libc::setsockopt(
                s.mnl.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast::<c_void>(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    fn setsockopt_int(&self, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: valid fd; v is a local int; size matches.
        let r = unsafe {
            libc::setsockopt(
                self.mnl.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast::<c_void>(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Sends all pages in one `sendmsg` (one skb: BATCH_BEGIN..END together).
    pub fn send_pages(&self, pages: &[&[u8]]) -> io::Result<usize> {
        let mut iov: Vec<libc::iovec> = pages
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: zeroed sockaddr_nl / msghdr are valid initial values.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_nl).cast::<c_void>();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: msg points to locals (addr, iov) and to the pages, all alive
        // for the duration of the call; the kernel only reads them.
        let r = unsafe { libc::sendmsg(self.mnl.as_raw_fd(), &msg, 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Receives one datagram without blocking; `Ok(None)` when nothing is queued.
    pub fn recv_nonblocking(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is a valid writable slice of buf.len() bytes.
        let r = unsafe {
            libc::recv(
                self.mnl.as_raw_fd(),
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(r as usize))
    }
}
