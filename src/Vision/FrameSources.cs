using System.Globalization;
using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>
/// One camera frame (BGR, 8 bits per channel), stamped with the TimeProvider timestamp taken when
/// it was captured. Synthetic frames also carry their ground truth. Owns the image: dispose it.
/// </summary>
public sealed class Frame : IDisposable
{
    public Frame(Mat image, long capturedTimestamp, long sequence, RigidTransform? truthCameraFromHead = null)
    {
        Image = image;
        CapturedTimestamp = capturedTimestamp;
        Sequence = sequence;
        TruthCameraFromHead = truthCameraFromHead;
    }

    /// <summary>The picture, BGR 8UC3.</summary>
    public Mat Image { get; }

    /// <summary>TimeProvider timestamp of the capture.</summary>
    public long CapturedTimestamp { get; }

    /// <summary>0, 1, 2, ... in the order the source delivered frames.</summary>
    public long Sequence { get; }

    /// <summary>Ground truth T_CH (synthetic scenes only); null when the board is not in view or unknown.</summary>
    public RigidTransform? TruthCameraFromHead { get; }

    public void Dispose() => Image.Dispose();
}

/// <summary>Where frames come from: a camera, a recording, or a synthetic scene. Not thread-safe: one reader.</summary>
public interface IFrameSource : IDisposable
{
    /// <summary>The spec it was opened with, e.g. "device:0@1280x720", "synthetic:sway".</summary>
    string Description { get; }

    /// <summary>Intrinsics when the source knows them (synthetic scenes); null until a camera is calibrated.</summary>
    CameraIntrinsics? Intrinsics { get; }

    /// <summary>True when <see cref="Read"/> waits for the next frame by itself (a camera); false when it returns at once.</summary>
    bool PacesItself { get; }

    /// <summary>Nominal time between frames.</summary>
    TimeSpan FrameInterval { get; }

    /// <summary>The next frame, or null at the end of a recording or when the camera gives none.</summary>
    Frame? Read();
}

/// <summary>Opens frame sources from their spec strings.</summary>
public static class FrameSources
{
    /// <summary>
    /// <c>device:N[@WxH]</c> a camera (V4L2 index N, default 1280x720);
    /// <c>file:PATH</c> a video file, or a folder of images (png/jpg/bmp, in name order);
    /// <c>synthetic[:SCENARIO][@WxH]</c> the synthetic head scene (scenarios: still, drift, sway, jerk,
    /// occlusion, blur, noise, lighting, lost; default still at 1280x720; <c>synthetic:jerk:SECONDS</c>
    /// sets when the jerk starts, default 1 s). The synthetic scene's time runs on <paramref name="timeProvider"/>.
    /// Throws ArgumentException on a malformed spec.
    /// </summary>
    public static IFrameSource Parse(string spec, TimeProvider timeProvider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        ArgumentNullException.ThrowIfNull(timeProvider);
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        var kind = (colon < 0 ? spec : spec[..colon]).Trim().ToLowerInvariant();
        var rest = colon < 0 ? "" : spec[(colon + 1)..];
        switch (kind)
        {
            case "device":
            {
                var (body, size) = SplitSize(rest, spec);
                if (!int.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index > 63)
                {
                    throw new ArgumentException($"frame source '{spec}': expected device:N[@WxH]");
                }
                return new DeviceFrameSource(index, size ?? new Size(1280, 720), timeProvider, spec);
            }
            case "file":
                if (rest.Length == 0) throw new ArgumentException($"frame source '{spec}': expected file:PATH");
                return Directory.Exists(rest) ? new ImageFolderFrameSource(rest, timeProvider, spec) : new VideoFileFrameSource(rest, timeProvider, spec);
            case "synthetic":
            {
                var (body, size) = SplitSize(rest, spec);
                var parts = body.Split(':', 2);
                var scenario = parts[0].Length == 0 ? SyntheticScenario.Still : ParseScenario(parts[0], spec);
                var jerkAtS = 1.0;
                if (parts.Length == 2 && (scenario != SyntheticScenario.Jerk
                    || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out jerkAtS) || !(jerkAtS >= 0) || jerkAtS > 86400))
                {
                    throw new ArgumentException($"frame source '{spec}': only synthetic:jerk:SECONDS takes a parameter (when the jerk starts, 0..86400 s)");
                }
                var s = size ?? new Size(1280, 720);
                return new SyntheticFrameSource(new SyntheticScene(scenario, CameraIntrinsics.Synthetic(s.Width, s.Height)) { JerkAtSeconds = jerkAtS }, timeProvider, spec);
            }
            default:
                throw new ArgumentException($"frame source '{spec}': unknown kind '{kind}' (device:N, file:PATH, synthetic[:SCENARIO])");
        }
    }

    private static SyntheticScenario ParseScenario(string name, string spec) =>
        Enum.TryParse<SyntheticScenario>(name.Trim(), ignoreCase: true, out var s) && Enum.IsDefined(s) && !int.TryParse(name, out _)
            ? s
            : throw new ArgumentException($"frame source '{spec}': unknown scenario '{name}' ({string.Join(", ", Enum.GetNames<SyntheticScenario>().Select(n => n.ToLowerInvariant()))})");

    private static (string Body, Size? Size) SplitSize(string text, string spec)
    {
        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at < 0) return (text.Trim(), null);
        var dims = text[(at + 1)..].Split('x', 'X');
        if (dims.Length != 2
            || !int.TryParse(dims[0], NumberStyles.None, CultureInfo.InvariantCulture, out var w)
            || !int.TryParse(dims[1], NumberStyles.None, CultureInfo.InvariantCulture, out var h)
            || w < 64 || h < 48 || w > 7680 || h > 4320)
        {
            throw new ArgumentException($"frame source '{spec}': size must be WxH, 64x48 .. 7680x4320");
        }
        return (text[..at].Trim(), new Size(w, h));
    }
}

/// <summary>A camera through OpenCV's VideoCapture (V4L2 on Linux). Read blocks until the next frame.</summary>
public sealed class DeviceFrameSource : IFrameSource
{
    private readonly VideoCapture _capture;
    private readonly TimeProvider _timeProvider;
    private long _sequence;

    public DeviceFrameSource(int index, Size size, TimeProvider timeProvider, string? description = null)
    {
        _timeProvider = timeProvider;
        Description = description ?? FormattableString.Invariant($"device:{index}@{size.Width}x{size.Height}");
        _capture = new VideoCapture(index, VideoCaptureAPIs.V4L2);
        if (!_capture.IsOpened())
        {
            _capture.Dispose();
            throw new InvalidOperationException($"camera {index} could not be opened");
        }
        _capture.Set(VideoCaptureProperties.FrameWidth, size.Width);
        _capture.Set(VideoCaptureProperties.FrameHeight, size.Height);
        var fps = _capture.Fps;
        FrameInterval = TimeSpan.FromSeconds(fps is > 1 and < 1000 ? 1.0 / fps : 1.0 / 30);
    }

    public string Description { get; }
    public CameraIntrinsics? Intrinsics => null;
    public bool PacesItself => true;
    public TimeSpan FrameInterval { get; }

    public Frame? Read()
    {
        // Grab first and stamp right after it returns: that is the closest we get to the exposure.
        if (!_capture.Grab()) return null;
        var ts = _timeProvider.GetTimestamp();
        var image = new Mat();
        if (!_capture.Retrieve(image) || image.Empty())
        {
            image.Dispose();
            return null;
        }
        return new Frame(ToBgr(image), ts, _sequence++);
    }

    internal static Mat ToBgr(Mat image)
    {
        if (image.Type() == MatType.CV_8UC3) return image;
        var bgr = new Mat();
        if (image.Channels() == 1) Cv2.CvtColor(image, bgr, ColorConversionCodes.GRAY2BGR);
        else if (image.Channels() == 4) Cv2.CvtColor(image, bgr, ColorConversionCodes.BGRA2BGR);
        else image.ConvertTo(bgr, MatType.CV_8UC3);
        image.Dispose();
        return bgr;
    }

    public void Dispose() => _capture.Dispose();
}

/// <summary>A recorded video file. Frames are stamped when read (a recording has no live clock).</summary>
public sealed class VideoFileFrameSource : IFrameSource
{
    private readonly VideoCapture _capture;
    private readonly TimeProvider _timeProvider;
    private long _sequence;

    public VideoFileFrameSource(string path, TimeProvider timeProvider, string? description = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"video file not found: {path}", path);
        _timeProvider = timeProvider;
        Description = description ?? "file:" + path;
        _capture = new VideoCapture(path);
        if (!_capture.IsOpened())
        {
            _capture.Dispose();
            throw new InvalidOperationException($"video file {path} could not be opened");
        }
        var fps = _capture.Fps;
        FrameInterval = TimeSpan.FromSeconds(fps is > 1 and < 1000 ? 1.0 / fps : 1.0 / 30);
    }

    public string Description { get; }
    public CameraIntrinsics? Intrinsics => null;
    public bool PacesItself => false;
    public TimeSpan FrameInterval { get; }

    public Frame? Read()
    {
        var image = new Mat();
        if (!_capture.Read(image) || image.Empty())
        {
            image.Dispose();
            return null;
        }
        return new Frame(DeviceFrameSource.ToBgr(image), _timeProvider.GetTimestamp(), _sequence++);
    }

    public void Dispose() => _capture.Dispose();
}

/// <summary>A folder of still images (png, jpg, jpeg, bmp, tif), read in ordinal name order, each stamped when read.</summary>
public sealed class ImageFolderFrameSource : IFrameSource
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"];
    private readonly string[] _files;
    private readonly TimeProvider _timeProvider;
    private int _next;

    public ImageFolderFrameSource(string folder, TimeProvider timeProvider, string? description = null)
    {
        _timeProvider = timeProvider;
        Description = description ?? "file:" + folder;
        _files = Directory.GetFiles(folder)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    public string Description { get; }
    public CameraIntrinsics? Intrinsics => null;
    public bool PacesItself => false;
    public TimeSpan FrameInterval => TimeSpan.FromSeconds(1.0 / 30);

    /// <summary>Number of images found.</summary>
    public int Count => _files.Length;

    public Frame? Read()
    {
        while (_next < _files.Length)
        {
            var index = _next++;
            var image = Cv2.ImRead(_files[index], ImreadModes.Color);
            if (!image.Empty()) return new Frame(image, _timeProvider.GetTimestamp(), index);
            image.Dispose(); // unreadable file: skip it
        }
        return null;
    }

    public void Dispose()
    {
    }
}
