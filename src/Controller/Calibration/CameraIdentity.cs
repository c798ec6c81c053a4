using System.Globalization;

namespace SmpRobot.Controller.Calibration;

/// <summary>
/// The identity calibrations are filed under: the camera, not the scene it looks at.
/// "synthetic:sway@1280x720" and "synthetic" are the same synthetic camera ("synthetic@1280x720");
/// "device:0" is "device:0@1280x720"; a recording or image folder is itself ("file:PATH").
/// </summary>
public static class CameraIdentity
{
    /// <summary>The identity of a frame-source spec (see FrameSources.Parse); "none" stays "none".</summary>
    public static string Of(string cameraSpec)
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
                return string.Create(CultureInfo.InvariantCulture, $"device:{body}@{size}");
            }
            default:
                return kind == "none" ? "none" : spec;
        }
    }
}
