using System.Globalization;

namespace SmpRobot.Controller.Calibration;

/// <summary>
/// The identity calibrations are filed under: the physical camera, not the index it happens to have or
/// the scene it looks at. A V4L2 device is named by its <c>/dev/v4l/by-id</c> link (vendor, model and
/// serial: the same camera on another USB port or index is the same camera); without one, by its index.
/// A recording or image folder is its full path. The synthetic camera is one camera per image size
/// ("synthetic@1280x720"), since its intrinsics are defined per size. Intrinsics carry their image size
/// and are only used for frames of that size.
/// </summary>
public static class CameraIdentity
{
    /// <summary>Where udev publishes stable names of V4L2 video devices.</summary>
    public const string DefaultV4lByIdDirectory = "/dev/v4l/by-id";

    /// <summary>
    /// The identity of a frame-source spec (see FrameSources.Parse); "none" stays "none".
    /// <paramref name="v4lByIdDirectory"/> is where device names are looked up (tests give their own).
    /// </summary>
    public static string Of(string cameraSpec, string v4lByIdDirectory = DefaultV4lByIdDirectory)
    {
        ArgumentNullException.ThrowIfNull(cameraSpec);
        var spec = cameraSpec.Trim();
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        var kind = (colon < 0 ? spec : spec[..colon]).ToLowerInvariant();
        var at = spec.IndexOf('@', StringComparison.Ordinal);
        var size = at < 0 ? "1280x720" : spec[(at + 1)..].Trim().ToLowerInvariant();
        switch (kind)
        {
            case "synthetic":
                return "synthetic@" + size;
            case "device":
            {
                var body = colon < 0 ? "" : (at < 0 ? spec[(colon + 1)..] : spec[(colon + 1)..at]).Trim();
                return ByIdName(body, v4lByIdDirectory) is { } stable ? "v4l2:" + stable : "device:" + body;
            }
            case "file":
                return "file:" + Path.GetFullPath(spec[(colon + 1)..].Trim());
            default:
                return kind == "none" ? "none" : spec;
        }
    }

    /// <summary>The by-id name of /dev/videoN, or null when udev gives none (e.g. in a container).</summary>
    private static string? ByIdName(string index, string byIdDirectory)
    {
        if (!int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || !Directory.Exists(byIdDirectory)) return null;
        var device = "/dev/video" + n.ToString(CultureInfo.InvariantCulture);
        foreach (var link in Directory.EnumerateFileSystemEntries(byIdDirectory).Order(StringComparer.Ordinal))
        {
            var target = new FileInfo(link).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
            if (string.Equals(target, device, StringComparison.Ordinal)) return Path.GetFileName(link);
        }
        return null;
    }
}
