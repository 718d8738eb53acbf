// Parse HLS playlists with hls-parser in strict mode (it throws on anything RFC 8216 forbids)
// and print what the manifest tests check, as JSON: node hls_strict.js FILE...
const fs = require("fs");
const HLS = require("hls-parser");

HLS.setOptions({ strictMode: true });

const parsed = {};
for (const file of process.argv.slice(2)) {
  const playlist = HLS.parse(fs.readFileSync(file, "utf8"));
  parsed[file] = playlist.isMasterPlaylist
    ? {
        master: true,
        variants: playlist.variants.map((variant) => ({
          uri: variant.uri,
          bandwidth: variant.bandwidth,
          averageBandwidth: variant.averageBandwidth,
          codecs: variant.codecs,
          audio: variant.audio.map((rendition) => rendition.uri),
          subtitles: variant.subtitles.map((rendition) => ({
            uri: rendition.uri,
            language: rendition.language,
            name: rendition.name,
            groupId: rendition.groupId,
          })),
        })),
      }
    : {
        master: false,
        targetDuration: playlist.targetDuration,
        playlistType: playlist.playlistType,
        endlist: playlist.endlist,
        segments: playlist.segments.map((segment) => ({
          uri: segment.uri,
          duration: segment.duration,
          map: segment.map && segment.map.uri,
        })),
      };
}
process.stdout.write(JSON.stringify(parsed));
