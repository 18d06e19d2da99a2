//! The hub's routing rules without sockets: each connection is its
//! bounded queue, read back as JSON frames.

use std::sync::atomic::AtomicUsize;

use serde_json::json;

use super::*;
use crate::backplane::LocalBackplane;
use crate::config::Limits;

fn hub() -> Hub {
    Hub::new(&Limits::default(), Arc::new(LocalBackplane))
}

struct Conn {
    member: Member,
    rx: mpsc::Receiver<Utf8Bytes>,
}

impl Conn {
    fn new(hub: &Hub, t: &Arc<Tenant>, peer: &str, metadata: Option<Value>) -> Conn {
        let (handle, rx) = hub.new_connection();
        let peer_id: Arc<str> = Arc::from(peer);
        hub.register(&t.name, &peer_id, &handle).expect("admitted");
        let peer_metadata = metadata.and_then(|m| m.as_object().cloned()).map(Arc::new);
        Conn { member: Member { peer_id, peer_metadata, handle, wants_presence: true }, rx }
    }

    /// Every frame queued so far.
    fn frames(&mut self) -> Vec<Value> {
        let mut out = vec![];
        while let Ok(f) = self.rx.try_recv() {
            out.push(serde_json::from_str(f.as_str()).expect("frames are JSON"));
        }
        out
    }
}

fn ack(id: &str) -> Option<Utf8Bytes> {
    Some(frame(&ServerFrame::Ack { request_id: id.into() }))
}

fn raw(v: Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap_or("?")).collect()
}

#[test]
fn a_subscriber_gets_its_ack_then_the_snapshot_then_deltas_and_messages() {
    let hub = hub();
    let t = hub.tenant("t");
    let mut a = Conn::new(&hub, &t, "alice", Some(json!({"name": "A"})));
    let mut b = Conn::new(&hub, &t, "bob", None);
    hub.subscribe(&t, &a.member, "room", false, ack("a1"));
    let fa = a.frames();
    assert_eq!(kinds(&fa), ["ack", "presence"]);
    assert_eq!(fa[1]["joined"], json!([]), "alone: an empty snapshot");
    hub.subscribe(&t, &b.member, "room", false, ack("b1"));
    let fb = b.frames();
    assert_eq!(kinds(&fb), ["ack", "presence"]);
    assert_eq!(fb[0]["requestId"], "b1");
    assert_eq!(fb[1]["joined"], json!([{"peerId": "alice", "metadata": {"name": "A"}}]));
    let fa = a.frames();
    assert_eq!(kinds(&fa), ["presence"]);
    assert_eq!(fa[0]["joined"], json!([{"peerId": "bob"}]), "the others get the join delta");
    assert_eq!(hub.publish(&t, &a.member, "room", &raw(json!({"n": 1}))), 1);
    let fb = b.frames();
    assert_eq!(kinds(&fb), ["message"]);
    assert_eq!((fb[0]["from"].as_str(), &fb[0]["data"]), (Some("alice"), &json!({"n": 1})));
    assert!(fb[0].get("fromMetadata").is_none(), "sender metadata only when asked for");
    assert!(a.frames().is_empty(), "a publisher is not echoed");
}

#[test]
fn sender_metadata_goes_only_to_subscribers_that_asked() {
    let hub = hub();
    let t = hub.tenant("t");
    let a = Conn::new(&hub, &t, "alice", Some(json!({"role": "agent"})));
    let mut plain = Conn::new(&hub, &t, "p", None);
    let mut meta = Conn::new(&hub, &t, "m", None);
    hub.subscribe(&t, &plain.member, "room", false, None);
    hub.subscribe(&t, &meta.member, "room", true, None);
    plain.frames();
    meta.frames();
    assert_eq!(hub.publish(&t, &a.member, "room", &raw(json!(1))), 2, "a non-subscriber may publish");
    assert!(plain.frames()[0].get("fromMetadata").is_none());
    assert_eq!(meta.frames()[0]["fromMetadata"], json!({"role": "agent"}));
}

#[test]
fn presence_is_per_peer_id_across_connections() {
    let hub = hub();
    let t = hub.tenant("t");
    let mut watcher = Conn::new(&hub, &t, "w", None);
    let first = Conn::new(&hub, &t, "pat", None);
    let second = Conn::new(&hub, &t, "pat", None);
    hub.subscribe(&t, &watcher.member, "room", false, None);
    watcher.frames();
    hub.subscribe(&t, &first.member, "room", false, None);
    hub.subscribe(&t, &second.member, "room", false, None);
    assert_eq!(kinds(&watcher.frames()), ["presence"], "one join for two connections");
    assert!(hub.unsubscribe(&t, &first.member, "room"));
    assert!(watcher.frames().is_empty(), "still present through the second connection");
    assert!(hub.unsubscribe(&t, &second.member, "room"));
    let f = watcher.frames();
    assert_eq!((kinds(&f), &f[0]["left"]), (vec!["presence"], &json!([{"peerId": "pat"}])));
    assert!(!hub.unsubscribe(&t, &second.member, "room"), "not subscribed any more");
}

#[test]
fn an_emptied_channel_is_removed_and_a_late_subscriber_gets_a_fresh_one() {
    let hub = hub();
    let t = hub.tenant("t");
    let a = Conn::new(&hub, &t, "a", None);
    let mut b = Conn::new(&hub, &t, "b", None);
    hub.subscribe(&t, &a.member, "room", false, None);
    let old = t.channels.read().get("room").cloned().expect("channel exists");
    assert_eq!(hub.tenant_usage("t").2, 1);
    hub.unsubscribe(&t, &a.member, "room");
    assert!(old.removed.load(Ordering::Acquire), "the last subscriber removes the channel");
    assert_eq!(hub.tenant_usage("t").2, 0);
    // A subscriber holding the removed channel must not land in it.
    hub.subscribe(&t, &b.member, "room", false, None);
    let fresh = t.channels.read().get("room").cloned().expect("recreated");
    assert!(!Arc::ptr_eq(&old, &fresh));
    assert!(old.state.read().subscribers.is_empty());
    b.frames();
    hub.publish(&t, &a.member, "room", &raw(json!("after")));
    assert_eq!(kinds(&b.frames()), ["message"]);
}

#[test]
fn racing_subscribers_and_leavers_never_lose_a_subscription() {
    // Each thread subscribes, must receive a message published right
    // after, and leaves — while the others empty and re-create the
    // channel under it. A subscription that landed in a removed channel
    // would miss its message.
    let hub = Arc::new(hub());
    let t = hub.tenant("t");
    let publisher = Conn::new(&hub, &t, "publisher", None).member;
    let missed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (hub, t, publisher, missed) = (hub.clone(), t.clone(), publisher.clone(), missed.clone());
            std::thread::spawn(move || {
                let mut c = Conn::new(&hub, &t, &format!("p{i}"), None);
                for n in 0..2_000 {
                    hub.subscribe(&t, &c.member, "room", false, None);
                    let tag = json!({"from": i, "n": n});
                    hub.publish(&t, &publisher, "room", &raw(tag.clone()));
                    if !c.frames().iter().any(|f| f["type"] == "message" && f["data"] == tag) {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                    hub.unsubscribe(&t, &c.member, "room");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(missed.load(Ordering::Relaxed), 0);
    assert_eq!(hub.tenant_usage("t").2, 0, "every channel went away with its last subscriber");
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Backplane for Recorder {
    fn publish(&self, tenant: &str, channel: &str, from: Origin<'_>, data: &RawValue) {
        self.events.lock().push(format!("publish {tenant}/{channel} from {} {}", from.peer_id, data.get()));
    }
    fn send(&self, tenant: &str, to: &str, from: Origin<'_>, _: &RawValue) -> Result<usize, ErrorCode> {
        self.events.lock().push(format!("send {tenant} {} -> {to}", from.peer_id));
        if to == "elsewhere" { Ok(1) } else { Err(ErrorCode::PeerNotFound) }
    }
    fn presence(&self, c: &PresenceChange, _: Option<&Map<String, Value>>) {
        self.events.lock().push(format!("{} {} {}", if c.joined { "joined" } else { "left" }, c.channel, c.peer_id));
    }
    fn kick(&self, tenant: &str, peer_id: &str) -> usize {
        self.events.lock().push(format!("kick {tenant} {peer_id}"));
        2
    }
}

#[test]
fn what_must_reach_other_nodes_goes_to_the_backplane_and_ingress_delivers_here() {
    let recorder = Arc::new(Recorder::default());
    let hub = Arc::new(Hub::new(&Limits::default(), recorder.clone()));
    let t = hub.tenant("t");
    let a = Conn::new(&hub, &t, "a", None);
    let mut b = Conn::new(&hub, &t, "b", None);
    let a2 = Conn::new(&hub, &t, "a", None);
    hub.subscribe(&t, &a.member, "room", false, None);
    hub.subscribe(&t, &a2.member, "room", false, None);
    hub.subscribe(&t, &b.member, "room", false, None);
    hub.publish(&t, &a.member, "room", &raw(json!(7)));
    assert_eq!(hub.send(&t, &a.member, "b", &raw(json!("here"))), Ok(1), "local peers stay local");
    assert_eq!(hub.send(&t, &a.member, "elsewhere", &raw(json!("x"))), Ok(1));
    assert_eq!(hub.send(&t, &a.member, "nobody", &raw(json!("x"))), Err(ErrorCode::PeerNotFound));
    assert_eq!(hub.kick("t", "b"), 1 + 2);
    hub.unsubscribe(&t, &a.member, "room");
    hub.unsubscribe(&t, &a2.member, "room");
    assert_eq!(
        *recorder.events.lock(),
        [
            "joined room a",
            "joined room b",
            "publish t/room from a 7",
            "send t a -> elsewhere",
            "send t a -> nobody",
            "kick t b",
            "left room a",
        ]
    );
    b.frames();
    // From another node: delivered to every local subscriber, a's
    // connections included (the sender is not on this node).
    let ingress = HubIngress { hub: hub.clone() };
    let remote = Origin { peer_id: "far", peer_metadata: None };
    hub.subscribe(&t, &a.member, "room", false, None);
    assert_eq!(ingress.publish("t", "room", remote, &raw(json!("from afar"))), 2);
    assert_eq!(ingress.send("t", "b", remote, &raw(json!("dm"))), Ok(1));
    assert_eq!(ingress.send("t", "nobody", remote, &raw(json!("dm"))), Err(ErrorCode::PeerNotFound));
    assert_eq!(ingress.publish("other-tenant", "room", remote, &raw(json!(0))), 0);
    let fb = b.frames();
    assert_eq!(kinds(&fb), ["presence", "message", "direct"]);
    assert_eq!(fb[1]["from"], "far");
    assert_eq!(recorder.events.lock().len(), 8, "ingress traffic is not sent back out");
}
