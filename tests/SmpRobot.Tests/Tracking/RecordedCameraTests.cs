using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using OpenCvSharp;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Tracking;

/// <summary>
/// A camera that is not the synthetic one: a folder of frames rendered here with OpenCV alone (the board
/// image warped by the homography of a known pose and known intrinsics; not the project's synthetic
/// scene), intrinsics from an OpenCV FileStorage calibration file, through the controller's
/// <c>--camera file:</c> and <c>--intrinsics</c>. The poses the tracker reports must match the truth.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class RecordedCameraTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    // Deliberately not the synthetic camera's intrinsics (fx 1400, cx 643.2): the file must be what is used.
    private static readonly CameraIntrinsics Truth = new(1280, 720, 1010, 1004, 627.5, 371.25, [0, 0, 0, 0, 0]);
    private const double PixelsPerMm = 40;
    private const double MarginMm = 3;
    private const int Supersampling = 4;

    private readonly string _dir = Directory.CreateTempSubdirectory("smp-recorded-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Board poses (T_CH) 95–135 mm from the camera, tilted up to about 25°, off centre.</summary>
    internal static readonly RigidTransform[] Poses =
    [
        Pose(0, 0, 0, 0, 0, 120),
        Pose(12, -8, 5, -10, 8, 110),
        Pose(-15, 10, -3, 6, -12, 130),
        Pose(20, 15, 10, 18, 5, 135),
        Pose(-8, -20, -8, -5, 22, 95),
        Pose(5, 8, 25, 0, -15, 125),
    ];

    private static RigidTransform Pose(double rxDeg, double ryDeg, double rzDeg, double xMm, double yMm, double zMm)
    {
        const double deg = Math.PI / 180;
        // Facing the camera: the board's +Z (out of the page) points back at it, so rotate 180° about X first.
        var facing = Rotations.MatrixFromVector(new Vec3(Math.PI, 0, 0));
        var tilt = Rotations.MatrixFromVector(new Vec3(rxDeg * deg, ryDeg * deg, rzDeg * deg));
        return Rotations.FromMatrix(Rotations.Multiply(tilt, facing), new Vec3(xMm, yMm, zMm));
    }

    [Theory]
    [InlineData("camera.yml")]
    [InlineData("camera.json")]
    public async Task A_recorded_camera_with_an_opencv_calibration_file_tracks_the_true_poses(string calibrationFile)
    {
        RenderFrames(_dir);
        var yaml = Path.Combine(_dir, calibrationFile);
        WriteOpenCvCalibration(yaml);

        var seen = new ConcurrentDictionary<long, TrackingSnapshot>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var c = await ControllerFixture.StartAsync(configure: o => o with { Camera = "file:" + Path.Combine(_dir, "frames"), IntrinsicsPath = yaml });
        var tracked = Assert.IsType<TrackedHeadPoseSource>(c.Services.GetRequiredService<IHeadPoseSource>());
        Assert.True(tracked.HasIntrinsics);
        Assert.Equal("file " + Path.GetFullPath(yaml), tracked.IntrinsicsOrigin);
        var k = tracked.Intrinsics!;
        Assert.Equal((Truth.WidthPx, Truth.HeightPx, Truth.FxPx, Truth.FyPx, Truth.CxPx, Truth.CyPx), (k.WidthPx, k.HeightPx, k.FxPx, k.FyPx, k.CxPx, k.CyPx));
        Assert.Equal(Truth.Distortion, k.Distortion);
        tracked.PoseUpdated += (_, _) =>
        {
            if (tracked.Snapshot() is { } s) seen[s.FrameSequence] = s;
            if (seen.Count >= Poses.Length) all.TrySetResult();
        };
        if (tracked.Snapshot() is { } first) seen[first.FrameSequence] = first; // a frame processed before we listened
        if (seen.Count >= Poses.Length) all.TrySetResult();
        await all.Task.WaitAsync(Timeout);

        for (var i = 0; i < Poses.Length; i++)
        {
            var s = seen[i];
            Assert.True(s.BoardFound, $"frame {i}: board not found ({s.MarkersSeen} markers, {s.CornersSeen} corners)");
            var measured = s.RawCameraFromHead!.Value;
            var error = measured.Translation.DistanceTo(Poses[i].Translation);
            var angle = Rotations.AngleBetweenDeg(measured, Poses[i]);
            // Measured here: at most 0.08 mm (depth) and reprojection 0.03-0.07 px; wrong intrinsics put poses 1-1.5 mm off.
            Assert.True(error < 0.15, $"frame {i}: translation off by {error:0.000} mm ({measured.Translation} vs {Poses[i].Translation})");
            Assert.True(angle < 0.5, $"frame {i}: rotation off by {angle:0.000}°");
        }
    }

    [Fact]
    public async Task A_real_camera_without_intrinsics_tracks_nothing_and_tracked_sessions_are_refused_naming_the_fix()
    {
        RenderFrames(_dir);
        await using var c = await ControllerFixture.StartAsync(configure: o => o with { Camera = "file:" + Path.Combine(_dir, "frames") });
        var tracked = Assert.IsType<TrackedHeadPoseSource>(c.Services.GetRequiredService<IHeadPoseSource>());
        Assert.False(tracked.HasIntrinsics);
        Assert.Null(tracked.Latest());

        var readiness = await c.Sessions.CheckStartAsync(new CheckStartRequest());
        Assert.False(readiness.Ready);
        Assert.Contains(readiness.Refusals, r => r.Contains("has no intrinsics", StringComparison.Ordinal) && r.Contains("smp calibrate intrinsics", StringComparison.Ordinal) && r.Contains("--intrinsics FILE", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Intrinsics_for_another_image_size_are_not_used_and_sessions_are_refused_saying_so()
    {
        RenderFrames(_dir);
        var yaml = Path.Combine(_dir, "camera-640.yml");
        WriteOpenCvCalibration(yaml, Truth with { WidthPx = 640, HeightPx = 480, CxPx = 320, CyPx = 240 });
        await using var c = await ControllerFixture.StartAsync(configure: o => o with { Camera = "file:" + Path.Combine(_dir, "frames"), IntrinsicsPath = yaml });
        var tracked = Assert.IsType<TrackedHeadPoseSource>(c.Services.GetRequiredService<IHeadPoseSource>());
        var processed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracked.PoseUpdated += (_, _) => processed.TrySetResult();
        if (tracked.Snapshot() is not null) processed.TrySetResult();
        await processed.Task.WaitAsync(Timeout);

        Assert.False(tracked.HasIntrinsics);
        Assert.Null(tracked.Latest());
        Assert.StartsWith("NOT USED", tracked.IntrinsicsOrigin, StringComparison.Ordinal);
        var readiness = await c.Sessions.CheckStartAsync(new CheckStartRequest());
        Assert.Contains(readiness.Refusals, r => r.Contains("640x480", StringComparison.Ordinal) && r.Contains("1280x720", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("missing.yml", "does not exist")]
    [InlineData("no-size.yml", "has no image_width")]
    [InlineData("not-opencv.yml", "FileStorage")]
    public void A_bad_calibration_file_is_refused_with_what_is_wrong(string file, string message)
    {
        var path = Path.Combine(_dir, file);
        if (file == "no-size.yml")
        {
            using var fs = new FileStorage(path, FileStorage.Modes.Write);
            using var k = new Mat(3, 3, MatType.CV_64FC1, Scalar.All(0));
            fs.Write("camera_matrix", k);
        }
        else if (file == "not-opencv.yml")
        {
            File.WriteAllText(path, "this: [is, not\n");
        }
        var e = Assert.Throws<InvalidDataException>(() => CameraIntrinsicsFile.Load(path));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    /// <summary>One PNG per pose: the board's own OpenCV image on a white page, warped into a 1280×720 grey frame.</summary>
    internal static string RenderFrames(string dir)
    {
        var frames = Directory.CreateDirectory(Path.Combine(dir, "frames")).FullName;
        using var board = MarkerBoard.DefaultHeadBoard();
        var boardPx = new Size((int)Math.Round(board.WidthMm * PixelsPerMm), (int)Math.Round(board.HeightMm * PixelsPerMm));
        using var boardImage = new Mat();
        board.Board.GenerateImage(boardPx, boardImage, 0, 1);
        var marginPx = (int)Math.Round(MarginMm * PixelsPerMm);
        using var page = new Mat();
        Cv2.CopyMakeBorder(boardImage, page, marginPx, marginPx, marginPx, marginPx, BorderTypes.Constant, Scalar.All(255));
        for (var i = 0; i < Poses.Length; i++)
        {
            // Rendered 4x larger and area-averaged down, as a sensor integrates light over each pixel (a plain
            // warp aliases the squares' edges).
            using var homography = PageToImage(Poses[i], board, Supersampling);
            using var large = new Mat(Truth.HeightPx * Supersampling, Truth.WidthPx * Supersampling, MatType.CV_8UC1, Scalar.All(90));
            Cv2.WarpPerspective(page, large, homography, large.Size(), InterpolationFlags.Linear, BorderTypes.Transparent);
            using var image = new Mat();
            Cv2.Resize(large, image, new Size(Truth.WidthPx, Truth.HeightPx), 0, 0, InterpolationFlags.Area);
            Cv2.ImWrite(Path.Combine(frames, $"frame-{i:000}.png"), image);
        }
        return frames;
    }

    /// <summary>Page pixel → image pixel: K · [r1 r2 t] · (page pixel → H), H's origin at the board centre, X right, Y up.</summary>
    private static Mat PageToImage(RigidTransform cameraFromHead, MarkerBoard board, int scale)
    {
        var r = Rotations.RotationMatrix(cameraFromHead);
        var t = cameraFromHead.Translation;
        // K of the image `scale` times larger: pixel centres map as (u + 0.5) * scale - 0.5.
        var k = new double[,] { { Truth.FxPx * scale, 0, ((Truth.CxPx + 0.5) * scale) - 0.5 }, { 0, Truth.FyPx * scale, ((Truth.CyPx + 0.5) * scale) - 0.5 }, { 0, 0, 1 } };
        var rt = new double[,] { { r[0], r[1], t.X }, { r[3], r[4], t.Y }, { r[6], r[7], t.Z } };
        var offset = MarginMm + (board.WidthMm / 2);
        var offsetY = MarginMm + (board.HeightMm / 2);
        // Page pixel centres sit at (u + 0.5) / PixelsPerMm mm from the page's corner.
        var pageToHead = new double[,] { { 1 / PixelsPerMm, 0, (0.5 / PixelsPerMm) - offset }, { 0, -1 / PixelsPerMm, offsetY - (0.5 / PixelsPerMm) }, { 0, 0, 1 } };
        var h = Multiply(Multiply(k, rt), pageToHead);
        var m = new Mat(3, 3, MatType.CV_64FC1);
        for (var row = 0; row < 3; row++)
        {
            for (var col = 0; col < 3; col++) m.Set(row, col, h[row, col]);
        }
        return m;
    }

    private static double[,] Multiply(double[,] a, double[,] b)
    {
        var p = new double[3, 3];
        for (var i = 0; i < 3; i++)
        {
            for (var j = 0; j < 3; j++)
            {
                for (var n = 0; n < 3; n++) p[i, j] += a[i, n] * b[n, j];
            }
        }
        return p;
    }

    /// <summary>The calibration file as OpenCV's own calibration sample writes it (cv::FileStorage).</summary>
    internal static void WriteOpenCvCalibration(string path, CameraIntrinsics? intrinsics = null)
    {
        var truth = intrinsics ?? Truth;
        using var fs = new FileStorage(path, FileStorage.Modes.Write);
        fs.Write("image_width", truth.WidthPx);
        fs.Write("image_height", truth.HeightPx);
        using var k = truth.CameraMatrix();
        fs.Write("camera_matrix", k);
        using var d = truth.DistortionMat();
        fs.Write("distortion_coefficients", d);
    }
}

/// <summary>
/// A camera held by the tracker: <c>smp calibrate intrinsics</c> of it takes the tracker's frames (a device opens
/// once), and the tracker uses the new intrinsics at once.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class HeldCameraIntrinsicsTests
{
    [Fact]
    public async Task Calibrating_the_trackers_own_camera_uses_its_frames_and_tracking_starts_at_once()
    {
        var truth = new CameraIntrinsics(1280, 720, 1100, 1100, 650, 355, [-0.05, 0.01, 0, 0, 0]);
        var board = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", ControllerFixture.Profile.Tracking.IntrinsicsBoard));
        using var scene = new SyntheticScene(SyntheticScenario.Still, truth, board, seed: 5);
        var poses = SmpRobot.Vision.Calibration.SyntheticCalibrationViews.Poses(truth, 8);
        var views = poses.Select((p, i) => scene.RenderAt(p, i)).ToList();
#pragma warning disable CA2000 // the controller's tracked head source owns the camera and disposes it
        var camera = new CyclingCamera("device:7@1280x720", views);
#pragma warning restore CA2000
        await using var c = await ControllerFixture.StartAsync(headPose: _ => Controller.CameraSetup.CreateTracked(camera, MarkerBoard.DefaultHeadBoard(), ControllerFixture.Profile, TimeProvider.System));
        var tracked = Assert.IsType<TrackedHeadPoseSource>(c.Services.GetRequiredService<IHeadPoseSource>());
        Assert.False(tracked.HasIntrinsics);

        var calibration = new CalibrationService.CalibrationServiceClient(c.Channel);
        var reply = await calibration.CalibrateIntrinsicsAsync(new CalibrateIntrinsicsRequest { Camera = "device:7", Views = 8 }, deadline: DateTime.UtcNow.AddSeconds(60));

        Assert.True(reply.Calibration.Valid, string.Join("; ", reply.Refused));
        Assert.Equal("device:7", reply.Calibration.Camera);
        Assert.InRange(reply.FxPx, truth.FxPx * 0.99, truth.FxPx * 1.01);
        Assert.True(tracked.HasIntrinsics);
        Assert.StartsWith("calibration " + reply.Calibration.Id, tracked.IntrinsicsOrigin, StringComparison.Ordinal);
        Assert.DoesNotContain((await c.Sessions.CheckStartAsync(new CheckStartRequest())).Refusals, r => r.Contains("intrinsics", StringComparison.Ordinal));
        board.Dispose();
    }

    /// <summary>A camera that shows the given pictures over and over, about 30 a second.</summary>
    private sealed class CyclingCamera(string description, IReadOnlyList<Mat> pictures) : IFrameSource
    {
        private long _sequence;

        public string Description => description;
        public CameraIntrinsics? Intrinsics => null;
        public bool PacesItself => false;
        public TimeSpan FrameInterval => TimeSpan.FromSeconds(1.0 / 30);

        public Frame? Read()
        {
            var n = _sequence++;
            return new Frame(pictures[(int)(n % pictures.Count)].Clone(), TimeProvider.System.GetTimestamp(), n);
        }

        public void Dispose()
        {
            foreach (var p in pictures) p.Dispose();
        }
    }
}
