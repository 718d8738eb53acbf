"""The master playlist and MPD a viewer gets for encrypted media: pure text work.

The stored manifests address the package's files by relative names. For an encrypted job each
viewer gets them completed (apps/access/stream.py):
- master playlist: HLS version 8, ``#EXT-X-DEFINE:NAME="sgkey",VALUE="<key URL>"`` (the public
  media playlists import it), and every media playlist addressed in the public folder;
- MPD: in each audio and video AdaptationSet, Common Encryption's ``ContentProtection`` with the
  key id, the ClearKey one with the license URL (``dashif:Laurl``, which dash.js and Shaka read),
  and a ``BaseURL`` to the public folder. Caption tracks keep their relative addresses.
"""

import uuid
import xml.etree.ElementTree as ET

from apps.transcode.encryption import KEY_VARIABLE, URI_ATTRIBUTE
from apps.transcode.mpd import NS

_MPD = {"mpd": NS}
CENC_NS = "urn:mpeg:cenc:2013"
DASHIF_NS = "https://dashif.org/CPS"
CLEARKEY_SCHEME = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
MP4_PROTECTION = "urn:mpeg:dash:mp4protection:2011"


class ManifestError(Exception):
    """A stored manifest this module cannot complete."""


def _quoted(text: str) -> str:
    if '"' in text or "\n" in text:
        raise ManifestError("a URL with a quote or a line break")
    return text


def master_encrypted(master: str, *, media_base: str, key_url: str, ts: bool = False) -> str:
    """``master`` with the key URL defined and its media playlists under ``media_base``
    (which ends with "/"); caption renditions (``subs/``) keep their relative URIs, those of
    the MPEG-TS set (``ts``) name their shifted timing (``subs/ts-``)."""
    out = []
    defined = False
    for raw in master.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-VERSION:"):
            out.append("#EXT-X-VERSION:8")
            out.append(f'#EXT-X-DEFINE:NAME="{KEY_VARIABLE}",VALUE="{_quoted(key_url)}"')
            defined = True
            continue
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line:
            line = URI_ATTRIBUTE.sub(lambda m: f'URI="{media_base}{m[1]}"', line)
        elif line.startswith("#EXT-X-MEDIA:") and "TYPE=SUBTITLES" in line and ts:
            line = line.replace('URI="subs/', 'URI="subs/ts-')
        elif line and not line.startswith("#"):
            line = media_base + line
        out.append(line)
    if not defined:
        raise ManifestError("the master playlist has no EXT-X-VERSION")
    return "\n".join(out) + "\n"


def mpd_encrypted(mpd: bytes, *, media_base: str, kid: uuid.UUID, license_url: str) -> bytes:
    """The MPD with ContentProtection and a BaseURL in every audio and video AdaptationSet."""
    for prefix, uri in (
        ("", NS),
        ("cenc", CENC_NS),
        ("dashif", DASHIF_NS),
        ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ("xlink", "http://www.w3.org/1999/xlink"),
    ):
        ET.register_namespace(prefix, uri)
    try:
        root = ET.fromstring(mpd)  # noqa: S314 - the packager's own output, not user input
    except ET.ParseError as error:
        raise ManifestError(f"the MPD is not XML: {error}") from None
    protected = 0
    for adaptation in root.iterfind(".//mpd:AdaptationSet", _MPD):
        kind = adaptation.get("contentType") or adaptation.get("mimeType", "")
        if not kind.startswith(("video", "audio")):
            continue
        common = ET.Element(
            f"{{{NS}}}ContentProtection",
            {
                "schemeIdUri": MP4_PROTECTION,
                "value": "cenc",
                f"{{{CENC_NS}}}default_KID": str(kid),
            },
        )
        clearkey = ET.Element(
            f"{{{NS}}}ContentProtection", {"schemeIdUri": CLEARKEY_SCHEME, "value": "ClearKey1.0"}
        )
        ET.SubElement(clearkey, f"{{{DASHIF_NS}}}Laurl", {"Lic_type": "EME-1.0"}).text = license_url
        # Schema order: ContentProtection early, BaseURL just before the segment information.
        adaptation.insert(0, clearkey)
        adaptation.insert(0, common)
        children = list(adaptation)
        position = next(
            (
                index
                for index, child in enumerate(children)
                if child.tag in (f"{{{NS}}}SegmentTemplate", f"{{{NS}}}Representation")
            ),
            len(children),
        )
        base = ET.Element(f"{{{NS}}}BaseURL")
        base.text = media_base
        adaptation.insert(position, base)
        protected += 1
    if not protected:
        raise ManifestError("the MPD has no audio or video AdaptationSet")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
