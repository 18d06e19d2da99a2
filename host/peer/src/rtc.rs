//! The one module that knows the `webrtc` crate (webrtc-rs 0.17, the classic
//! tokio API). Everything else in `peer` talks to [`RtcApi`], [`Pc`],
//! [`LocalRtpTrack`] and [`RemoteRtp`], so the stack can be swapped here alone.

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{API, APIBuilder};
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::{TrackLocal, TrackLocalContext};
use webrtc::track::track_remote::TrackRemote;

use super::error::PeerError;
use metered_protocol::{IceCandidateInit, SdpKind};
use metered_signalling::IceServer;

const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";

/// Video codecs offered, in preference order: (MIME type, fmtp).
pub(crate) const VIDEO_CODECS: [(&str, &str); 3] = [
    (MIME_TYPE_VP8, ""),
    (MIME_TYPE_H264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
    (MIME_TYPE_H264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
];
const VIDEO_PAYLOAD_TYPES: [u8; 3] = [96, 102, 108];

fn video_capability((mime, fmtp): &(&str, &str)) -> RTCRtpCodecCapability {
    let rtcp_feedback = ["goog-remb", "ccm fir", "nack", "nack pli"]
        .iter()
        .map(|f| {
            let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
            RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
        })
        .collect();
    RTCRtpCodecCapability {
        mime_type: (*mime).to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: (*fmtp).to_owned(),
        rtcp_feedback,
    }
}

/// Which local addresses ICE may gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcePolicy {
    /// Every non-loopback interface (the WebRTC default), no mDNS.
    #[default]
    Default,
    /// Only 127.0.0.1 (UDP over IPv4): loopback tests and same-host agents.
    LoopbackOnly,
}

fn rtc_err(e: impl std::fmt::Display) -> PeerError {
    PeerError::Rtc(e.to_string())
}

fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The WebRTC stack, configured once per [`super::MeteredPeer`].
pub(crate) struct RtcApi {
    api: API,
}

impl RtcApi {
    /// Opus (pt 111) for audio; VP8 (pt 96) and H.264 (pt 102, 108) for video;
    /// NACK / RTCP reports / TWCC interceptors; ICE per `policy`, mDNS off.
    /// `video` (MIME types, in order; empty: all) picks the video codecs.
    pub(crate) fn new(policy: &IcePolicy, video: &[String]) -> Result<Self, PeerError> {
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters { capability: opus_capability(), payload_type: 111, ..Default::default() },
                RTPCodecType::Audio,
            )
            .map_err(rtc_err)?;
        // VP8 first (the SDKs' and browsers' default), then H.264
        // constrained baseline and baseline, packetization-mode 1 (what
        // aiortc and Chromium offer and what the H.264 payloader writes).
        let mut order: Vec<usize> = (0..VIDEO_CODECS.len()).collect();
        if !video.is_empty() {
            for want in video {
                if !VIDEO_CODECS.iter().any(|(m, _)| m.eq_ignore_ascii_case(want)) {
                    return Err(PeerError::Rtc(format!("unknown video codec {want:?} (video/VP8, video/H264)")));
                }
            }
            order = video
                .iter()
                .flat_map(|want| (0..VIDEO_CODECS.len()).filter(move |&i| VIDEO_CODECS[i].0.eq_ignore_ascii_case(want)))
                .collect();
            order.dedup();
        }
        for i in order {
            let codec = &VIDEO_CODECS[i];
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        capability: video_capability(codec),
                        payload_type: VIDEO_PAYLOAD_TYPES[i],
                        ..Default::default()
                    },
                    RTPCodecType::Video,
                )
                .map_err(rtc_err)?;
        }
        let registry = webrtc::api::interceptor_registry::register_default_interceptors(Registry::new(), &mut media)
            .map_err(rtc_err)?;
        let mut settings = SettingEngine::default();
        settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // Answer as the DTLS server (`a=setup:passive`). The stack answers
        // with one fixed role on every renegotiation; browsers refuse an
        // answer that flips the role the first negotiation settled ("Failed
        // to set SSL role"). Offerers answer our actpass offers `active`
        // (browsers, aiortc), so `passive` is the role we hold either way.
        settings.set_answering_dtls_role(DTLSRole::Server).map_err(rtc_err)?;
        if *policy == IcePolicy::LoopbackOnly {
            settings.set_include_loopback_candidate(true);
            settings.set_network_types(vec![NetworkType::Udp4]);
            settings.set_interface_filter(Box::new(|name: &str| name == "lo" || name.starts_with("lo")));
            settings.set_ip_filter(Box::new(|ip: IpAddr| ip == IpAddr::from([127, 0, 0, 1])));
        }
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        Ok(Self { api })
    }
}

/// Connection state, as the SDKs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PcState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// What a [`Pc`] reports, tagged by the generation that built it.
pub(crate) enum PcEvent {
    State(PcState),
    Track {
        track: RemoteRtp,
        mid: Option<String>,
    },
    /// The remote opened a data channel.
    DataChannel(BoundChannel),
}

/// One `RTCPeerConnection`.
pub(crate) struct Pc {
    pc: Arc<RTCPeerConnection>,
}

impl Pc {
    /// Builds a connection whose events arrive on `events` tagged with `generation`.
    pub(crate) async fn new(
        api: &RtcApi,
        ice_servers: &[IceServer],
        generation: u64,
        events: mpsc::UnboundedSender<(u64, PcEvent)>,
    ) -> Result<Pc, PeerError> {
        let config = RTCConfiguration {
            ice_servers: ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ..Default::default()
        };
        let pc = Arc::new(api.api.new_peer_connection(config).await.map_err(rtc_err)?);
        let tx = events.clone();
        pc.on_peer_connection_state_change(Box::new(move |s: RTCPeerConnectionState| {
            let state = match s {
                RTCPeerConnectionState::Connected => Some(PcState::Connected),
                RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => Some(PcState::Connecting),
                RTCPeerConnectionState::Disconnected => Some(PcState::Disconnected),
                RTCPeerConnectionState::Failed => Some(PcState::Failed),
                RTCPeerConnectionState::Closed => Some(PcState::Closed),
                RTCPeerConnectionState::Unspecified => None,
            };
            if let Some(state) = state {
                let _ = tx.send((generation, PcEvent::State(state)));
            }
            Box::pin(async {})
        }));
        let tx = events.clone();
        let weak = Arc::downgrade(&pc);
        pc.on_track(Box::new(move |track, _receiver, transceiver| {
            let mid = transceiver.mid().map(|m| m.to_string());
            let rtp = RemoteRtp { track, pc: weak.clone() };
            let _ = tx.send((generation, PcEvent::Track { track: rtp, mid }));
            Box::pin(async {})
        }));
        pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
            let events = events.clone();
            // Bound before this returns: the stack starts the channel's read
            // loop right after, and a message without a handler is lost.
            Box::pin(async move {
                let bound = RtcChannel(dc).bind(DEFAULT_LOW_THRESHOLD).await;
                let _ = events.send((generation, PcEvent::DataChannel(bound)));
            })
        }));
        Ok(Pc { pc })
    }

    /// Starts sending `track`; RTCP from the remote is drained in the background
    /// (the interceptors need it read). Returns the sender.
    pub(crate) async fn add_track(&self, track: &LocalRtpTrack) -> Result<RtpSender, PeerError> {
        let t: Arc<dyn TrackLocal + Send + Sync> = track.0.clone();
        let sender = self.pc.add_track(t).await.map_err(rtc_err)?;
        for tr in self.pc.get_transceivers().await {
            if !Arc::ptr_eq(&tr.sender().await, &sender) {
                continue;
            }
            if tr.mid().is_none() {
                // Fresh: keep it out of reach of a remote offer's m-sections
                // (the stack lets a remote offer claim an unassociated
                // send-recv transceiver) until our own offer carries it. A
                // track sent in a section the remote created gets a receiver
                // id of the remote's choosing, and the browser SDK keys track
                // metadata by that id: it would never find ours.
                tr.set_direction(RTCRtpTransceiverDirection::Sendonly).await;
            } else if tr.direction() == RTCRtpTransceiverDirection::Recvonly {
                // A reused transceiver may be recvonly: advertise the send.
                tr.set_direction(RTCRtpTransceiverDirection::Sendrecv).await;
            }
        }
        let reader = sender.clone();
        if track.is_video() {
            let (track, key) = (track.clone(), Arc::as_ptr(&sender) as usize);
            tokio::spawn(async move {
                while let Ok((packets, _)) = reader.read_rtcp().await {
                    track.feedback().on_rtcp(key, &packets);
                }
                track.feedback().forget(key);
            });
        } else {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1500];
                while reader.read(&mut buf).await.is_ok() {}
            });
        }
        Ok(RtpSender(sender))
    }

    /// Stops sending on `sender` (its section goes recvonly on the next negotiation).
    pub(crate) async fn remove_track(&self, sender: &RtpSender) -> Result<(), PeerError> {
        self.pc.remove_track(&sender.0).await.map_err(rtc_err)
    }

    /// Creates an offer, applies it and waits for ICE gathering: the returned SDP
    /// carries every candidate (non-trickle, as the Python SDK sends).
    pub(crate) async fn offer(&self) -> Result<String, PeerError> {
        // Our fresh sections go out send-recv (see `add_track`).
        for tr in self.pc.get_transceivers().await {
            if tr.mid().is_none()
                && tr.direction() == RTCRtpTransceiverDirection::Sendonly
                && tr.sender().await.track().await.is_some()
            {
                tr.set_direction(RTCRtpTransceiverDirection::Sendrecv).await;
            }
        }
        let offer = self.pc.create_offer(None).await.map_err(rtc_err)?;
        self.set_local_and_gather(offer).await
    }

    /// Creates an answer, applies it and waits for ICE gathering.
    pub(crate) async fn answer(&self) -> Result<String, PeerError> {
        let answer = self.pc.create_answer(None).await.map_err(rtc_err)?;
        self.set_local_and_gather(answer).await
    }

    async fn set_local_and_gather(&self, desc: RTCSessionDescription) -> Result<String, PeerError> {
        let mut gathered = self.pc.gathering_complete_promise().await;
        self.pc.set_local_description(desc).await.map_err(rtc_err)?;
        // Loopback/host gathering is immediate; the bound keeps a broken STUN
        // server from stalling negotiation (trickled candidates aren't sent).
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
        let local = self.pc.local_description().await.ok_or_else(|| rtc_err("no local description"))?;
        Ok(local.sdp)
    }

    /// Applies a remote description (hostile input: errors, never panics).
    pub(crate) async fn set_remote(&self, kind: SdpKind, sdp: String) -> Result<(), PeerError> {
        let desc = match kind {
            SdpKind::Offer => RTCSessionDescription::offer(sdp),
            SdpKind::Answer => RTCSessionDescription::answer(sdp),
        }
        .map_err(rtc_err)?;
        self.pc.set_remote_description(desc).await.map_err(rtc_err)
    }

    /// Adds a remote candidate.
    pub(crate) async fn add_candidate(&self, c: &IceCandidateInit) -> Result<(), PeerError> {
        let init = RTCIceCandidateInit {
            candidate: c.candidate.clone(),
            sdp_mid: c.sdp_mid.clone(),
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment.clone(),
        };
        self.pc.add_ice_candidate(init).await.map_err(rtc_err)
    }

    /// Whether the signaling state is `stable`.
    pub(crate) fn stable(&self) -> bool {
        self.pc.signaling_state() == RTCSignalingState::Stable
    }

    /// The local description's SDP (to send an unanswered offer again).
    pub(crate) async fn local_sdp(&self) -> Option<String> {
        self.pc.local_description().await.map(|d| d.sdp)
    }

    /// Whether we hold an unanswered local offer.
    pub(crate) fn have_local_offer(&self) -> bool {
        self.pc.signaling_state() == RTCSignalingState::HaveLocalOffer
    }

    /// Whether a remote description was applied.
    pub(crate) async fn has_remote(&self) -> bool {
        self.pc.remote_description().await.is_some()
    }

    /// Whether some local sender didn't make it into the negotiated session.
    pub(crate) async fn local_media_unsatisfied(&self) -> bool {
        for t in self.pc.get_transceivers().await {
            if t.sender().await.track().await.is_some()
                && !matches!(
                    t.current_direction(),
                    RTCRtpTransceiverDirection::Sendrecv | RTCRtpTransceiverDirection::Sendonly
                )
            {
                return true;
            }
        }
        false
    }

    /// Creates a data channel on this connection (it needs a negotiation
    /// round when it is the first one: the SCTP association rides on it).
    pub(crate) async fn create_data_channel(&self, label: &str, init: ChannelInit) -> Result<BoundChannel, PeerError> {
        let low_threshold = init.low_threshold;
        let init = RTCDataChannelInit {
            ordered: Some(init.ordered),
            max_packet_life_time: init.max_packet_life_time,
            max_retransmits: init.max_retransmits,
            protocol: Some(init.protocol),
            negotiated: init.negotiated_id,
        };
        let dc = self.pc.create_data_channel(label, Some(init)).await.map_err(rtc_err)?;
        Ok(RtcChannel(dc).bind(low_threshold).await)
    }

    /// Whether the negotiated session carries an SCTP (data channel) section.
    pub(crate) async fn sctp_negotiated(&self) -> bool {
        self.pc.remote_description().await.is_some_and(|d| d.sdp.contains("\nm=application"))
    }

    /// Closes the connection (bounded: a wedged DTLS close must not block us).
    pub(crate) async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pc.close()).await;
    }
}

/// A sender of a [`Pc`].
pub(crate) struct RtpSender(Arc<RTCRtpSender>);

/// An outbound track: Opus, or video in every codec we offer. One per
/// local track, added to every peer's connection: each encoded frame is
/// written once per codec and fanned out by the stack to the connections
/// that negotiated that codec.
#[derive(Clone)]
pub(crate) struct LocalRtpTrack(Arc<Bound>);

/// The stack's sample tracks (one per codec), and which connection is bound
/// to which (the stack binds a track once its sender starts, after
/// negotiation, and unbinds it when the sender stops or its connection
/// closes).
struct Bound {
    tracks: Vec<TrackLocalStaticSample>,
    kind: RTPCodecType,
    id: String,
    stream_id: String,
    bound: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    counts: Vec<AtomicUsize>,
    feedback: Feedback,
}

/// What receivers of an outgoing video track asked for (RTCP).
#[derive(Default)]
pub(crate) struct Feedback {
    /// A picture loss / full intra request, or a new receiver: send a keyframe.
    keyframe: std::sync::atomic::AtomicBool,
    /// PLI and FIR messages seen.
    pub(crate) requests: std::sync::atomic::AtomicU64,
    /// Each receiver's latest REMB estimate and loss share (keyed by sender).
    estimates: parking_lot::Mutex<std::collections::HashMap<usize, Estimate>>,
}

#[derive(Default, Clone, Copy)]
struct Estimate {
    remb: Option<u32>,
    loss: f32,
}

impl Feedback {
    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// Whether a keyframe was asked for since the last call.
    pub(crate) fn take_keyframe_request(&self) -> bool {
        self.keyframe.swap(false, Ordering::AcqRel)
    }

    fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Release);
    }

    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// The lowest REMB any receiver reported, and the worst loss share.
    pub(crate) fn estimate(&self) -> (Option<u32>, f32) {
        let est = self.estimates.lock();
        let remb = est.values().filter_map(|e| e.remb).min();
        let loss = est.values().map(|e| e.loss).fold(0.0, f32::max);
        (remb, loss)
    }

    fn on_rtcp(&self, sender: usize, packets: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>]) {
        use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        use webrtc::rtcp::receiver_report::ReceiverReport;
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.request_keyframe();
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                if remb.bitrate.is_finite() && remb.bitrate > 0.0 {
                    self.estimates.lock().entry(sender).or_default().remb = Some(remb.bitrate.min(1e9) as u32);
                }
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>()
                && let Some(worst) = rr.reports.iter().map(|r| r.fraction_lost).max()
            {
                self.estimates.lock().entry(sender).or_default().loss = f32::from(worst) / 256.0;
            }
        }
    }

    fn forget(&self, sender: usize) {
        self.estimates.lock().remove(&sender);
    }
}

#[async_trait::async_trait]
impl TrackLocal for Bound {
    async fn bind(&self, t: &TrackLocalContext) -> webrtc::error::Result<RTCRtpCodecParameters> {
        // The remote's preference order: the first negotiated codec we have.
        let pick = t.codec_parameters().iter().find_map(|c| {
            self.tracks.iter().position(|track| {
                let ours = track.codec();
                ours.mime_type.eq_ignore_ascii_case(&c.capability.mime_type)
                    && (!ours.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264)
                        || c.capability.sdp_fmtp_line.contains("packetization-mode=1"))
            })
        });
        let Some(i) = pick else { return Err(webrtc::Error::ErrUnsupportedCodec) };
        let bound = self.tracks[i].bind(t).await?;
        self.bound.lock().insert(t.id(), i);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        // A new receiver starts decoding at a keyframe.
        self.feedback.request_keyframe();
        Ok(bound)
    }

    async fn unbind(&self, t: &TrackLocalContext) -> webrtc::error::Result<()> {
        let Some(i) = self.bound.lock().remove(&t.id()) else { return Err(webrtc::Error::ErrUnbindFailed) };
        self.tracks[i].unbind(t).await?;
        // Saturating: never below zero whatever order the stack calls in.
        let _ = self.counts[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        Ok(())
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn rid(&self) -> Option<&str> {
        None
    }

    fn stream_id(&self) -> &str {
        &self.stream_id
    }

    fn kind(&self) -> RTPCodecType {
        self.kind
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl LocalRtpTrack {
    fn new(kind: RTPCodecType, codecs: Vec<RTCRtpCodecCapability>, track_id: &str, stream_id: &str) -> Self {
        let counts = codecs.iter().map(|_| AtomicUsize::new(0)).collect();
        let tracks = codecs
            .into_iter()
            .map(|c| TrackLocalStaticSample::new(c, track_id.to_owned(), stream_id.to_owned()))
            .collect();
        Self(Arc::new(Bound {
            tracks,
            kind,
            id: track_id.to_owned(),
            stream_id: stream_id.to_owned(),
            bound: Default::default(),
            counts,
            feedback: Feedback::default(),
        }))
    }

    /// An Opus track advertised as `a=msid:<stream_id> <track_id>`.
    pub(crate) fn opus(track_id: &str, stream_id: &str) -> Self {
        Self::new(RTPCodecType::Audio, vec![opus_capability()], track_id, stream_id)
    }

    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// A video track in every codec of [`VIDEO_CODECS`] (index `i` of the
    /// writes is codec `i`): each connection is bound to the first of them
    /// its remote prefers.
    pub(crate) fn video(track_id: &str, stream_id: &str) -> Self {
        Self::new(RTPCodecType::Video, VIDEO_CODECS.iter().map(video_capability).collect(), track_id, stream_id)
    }

    /// Whether the track is video.
    pub(crate) fn is_video(&self) -> bool {
        self.0.kind == RTPCodecType::Video
    }

    /// Whether some connection is sending this track: until one is, encoding
    /// its frames is wasted work (they would be dropped).
    pub(crate) fn is_bound(&self) -> bool {
        self.0.counts.iter().any(|c| c.load(Ordering::Relaxed) > 0)
    }

    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// Connections bound to codec `i`.
    pub(crate) fn bound_to(&self, i: usize) -> usize {
        self.0.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// What the receivers asked for.
    pub(crate) fn feedback(&self) -> &Feedback {
        &self.0.feedback
    }

    /// Writes one encoded packet of `duration` to every bound connection.
    pub(crate) async fn write(&self, packet: &[u8], duration: Duration) -> Result<(), PeerError> {
        self.write_codec(0, packet, duration).await
    }

    /// Writes one encoded frame of codec `i` lasting `duration` to every
    /// connection bound to that codec.
    pub(crate) async fn write_codec(&self, i: usize, data: &[u8], duration: Duration) -> Result<(), PeerError> {
        let Some(track) = self.0.tracks.get(i) else { return Ok(()) };
        let sample =
            Sample { data: Bytes::copy_from_slice(data), timestamp: SystemTime::now(), duration, ..Default::default() };
        track.write_sample(&sample).await.map_err(rtc_err)
    }
}

/// An inbound RTP track.
pub(crate) struct RemoteRtp {
    track: Arc<TrackRemote>,
    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    pc: std::sync::Weak<RTCPeerConnection>,
}

impl RemoteRtp {
    /// The negotiated codec's MIME type (`video/VP8`, `video/H264`, `audio/opus`).
    pub(crate) fn mime_type(&self) -> String {
        self.track.codec().capability.mime_type
    }

    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// The next RTP packet; `Err` once the track ended.
    pub(crate) async fn read_packet(&self) -> Result<webrtc::rtp::packet::Packet, PeerError> {
        let (pkt, _) = self.track.read_rtp().await.map_err(rtc_err)?;
        Ok(pkt)
    }

    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    /// Asks the sender for a keyframe (RTCP PLI); a no-op once the
    /// connection is gone.
    pub(crate) async fn request_keyframe(&self) {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let Some(pc) = self.pc.upgrade() else { return };
        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: self.track.ssrc() };
        let _ = pc.write_rtcp(&[Box::new(pli)]).await;
    }

    /// Whether the track is audio.
    pub(crate) fn is_audio(&self) -> bool {
        self.track.kind() == RTPCodecType::Audio
    }

    /// Whether its codec is Opus.
    pub(crate) fn is_opus(&self) -> bool {
        self.track.codec().capability.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS)
    }

    /// The track id the stack parsed from the msid.
    pub(crate) fn id(&self) -> String {
        self.track.id()
    }

    /// The stream id the stack parsed from the msid.
    pub(crate) fn stream_id(&self) -> String {
        self.track.stream_id()
    }

    /// The next packet's payload and sequence number; `Err` once the track ended.
    pub(crate) async fn read(&self) -> Result<(Bytes, u16), PeerError> {
        let (pkt, _) = self.track.read_rtp().await.map_err(rtc_err)?;
        Ok((pkt.payload, pkt.header.sequence_number))
    }
}

/// How a data channel is created (the subset of `RTCDataChannelInit` the SDKs pass).
#[derive(Debug, Clone)]
pub(crate) struct ChannelInit {
    pub(crate) ordered: bool,
    pub(crate) max_packet_life_time: Option<u16>,
    pub(crate) max_retransmits: Option<u16>,
    pub(crate) protocol: String,
    pub(crate) negotiated_id: Option<u16>,
    pub(crate) low_threshold: usize,
}

/// The buffered-amount-low threshold of channels the remote opens (half the
/// SDKs' default 1 MiB send cap).
pub(crate) const DEFAULT_LOW_THRESHOLD: usize = 512 << 10;

/// Events a channel queues for its reader (bounded: see [`RtcChannel::bind`]).
const CHANNEL_QUEUE: usize = 256;

/// A data channel with its handlers installed.
pub(crate) struct BoundChannel {
    pub(crate) channel: RtcChannel,
    pub(crate) events: mpsc::Receiver<ChannelEvent>,
    pub(crate) low: Arc<Notify>,
}

/// What an [`RtcChannel`] reports.
pub(crate) enum ChannelEvent {
    Open,
    Message { text: bool, data: Bytes },
    Close,
    Error(String),
}

/// One SCTP data channel.
#[derive(Clone)]
pub(crate) struct RtcChannel(Arc<RTCDataChannel>);

impl RtcChannel {
    /// The label.
    pub(crate) fn label(&self) -> &str {
        self.0.label()
    }

    /// The SCTP stream id.
    pub(crate) fn id(&self) -> u16 {
        self.0.id()
    }

    /// Whether delivery is ordered.
    pub(crate) fn ordered(&self) -> bool {
        self.0.ordered()
    }

    /// The sub-protocol.
    pub(crate) fn protocol(&self) -> &str {
        self.0.protocol()
    }

    /// `connecting` / `open` / `closing` / `closed`, as the SDKs spell it.
    pub(crate) fn ready_state(&self) -> &'static str {
        match self.0.ready_state() {
            RTCDataChannelState::Open => "open",
            RTCDataChannelState::Closing => "closing",
            RTCDataChannelState::Closed => "closed",
            RTCDataChannelState::Connecting | RTCDataChannelState::Unspecified => "connecting",
        }
    }

    /// Bytes queued for sending.
    pub(crate) async fn buffered_amount(&self) -> usize {
        self.0.buffered_amount().await
    }

    /// Installs the handlers: events go into a bounded queue — a reader that
    /// falls behind stalls this channel's read loop (and, through SCTP flow
    /// control, the sender) instead of queueing without limit — and `low` is
    /// woken whenever the send buffer drains to `low_threshold`.
    async fn bind(self, low_threshold: usize) -> BoundChannel {
        let (events, rx) = mpsc::channel(CHANNEL_QUEUE);
        let low = Arc::new(Notify::new());
        let tx = events.clone();
        self.0.on_open(Box::new(move || {
            Box::pin(async move {
                let _ = tx.send(ChannelEvent::Open).await;
            })
        }));
        let tx = events.clone();
        self.0.on_message(Box::new(move |m| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(ChannelEvent::Message { text: m.is_string, data: m.data }).await;
            })
        }));
        let tx = events.clone();
        self.0.on_close(Box::new(move || {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(ChannelEvent::Close).await;
            })
        }));
        self.0.on_error(Box::new(move |e| {
            let tx = events.clone();
            Box::pin(async move {
                let _ = tx.send(ChannelEvent::Error(e.to_string())).await;
            })
        }));
        self.0.set_buffered_amount_low_threshold(low_threshold).await;
        let waker = low.clone();
        self.0
            .on_buffered_amount_low(Box::new(move || {
                waker.notify_waiters();
                Box::pin(async {})
            }))
            .await;
        BoundChannel { channel: self, events: rx, low }
    }

    /// Sends a text or binary message.
    pub(crate) async fn send(&self, text: bool, data: Bytes) -> Result<(), PeerError> {
        let sent = if text {
            let s = String::from_utf8(data.to_vec()).map_err(|_| rtc_err("text message is not UTF-8"))?;
            self.0.send_text(s).await
        } else {
            self.0.send(&data).await
        };
        sent.map(drop).map_err(rtc_err)
    }

    /// Closes the channel.
    pub(crate) async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.0.close()).await;
    }
}
