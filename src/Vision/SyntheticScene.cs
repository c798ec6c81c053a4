using System.Runtime.InteropServices;
using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>Scripted motions and disturbances of the synthetic head scene.</summary>
public enum SyntheticScenario
{
    /// <summary>The head does not move; mild sensor noise.</summary>
    Still,
    /// <summary>Slow steady drift (about 0.7 mm/s and 0.2 °/s), as a person slowly relaxing.</summary>
    Drift,
    /// <summary>Breathing sway: 2 mm (plus 0.8 and 0.6 mm on the other axes) at 0.25 Hz, peak speed about 3.5 mm/s, and a little rocking.</summary>
    Sway,
    /// <summary>Still, then a sudden 5 mm jerk along camera X at t = <see cref="SyntheticScene.JerkAtSeconds"/> (default 1.0 s, over 20 ms), then still again.</summary>
    Jerk,
    /// <summary>Still; a gloved finger slides over part of the board during the first 0.5 s.</summary>
    Occlusion,
    /// <summary>Fast sway (3 mm at 1 Hz) rendered with 20 ms motion blur.</summary>
    Blur,
    /// <summary>Still, with heavy sensor noise.</summary>
    Noise,
    /// <summary>Still, with the light level swinging between about 45 % and 125 % at 0.5 Hz.</summary>
    Lighting,
    /// <summary>Still; from t = 0.5 s a hand covers the whole board (tracking must report it lost).</summary>
    Lost,
}

/// <summary>
/// Renders a camera's view of a head patch wearing the marker board, from a known pose T_CH and
/// known intrinsics with lens distortion: skin-toned patch with stubble, the board on a white
/// sticker, a dark background, then the scenario's disturbances and sensor noise. Deterministic for
/// a given seed, time and frame index. Owns native images: dispose it.
/// </summary>
public sealed class SyntheticScene : IDisposable
{
    private const double TexturePxPerMm = 20;
    private const double PatchWidthMm = 72;
    private const double PatchHeightMm = 60;
    private const double StickerMarginMm = 2;

    private readonly Mat _texture;
    private readonly Mat _background;
    private readonly float[] _normX;
    private readonly float[] _normY;
    private readonly float[] _mapX;
    private readonly float[] _mapY;
    private readonly bool _ownsBoard;
    private readonly int _seed;
    // Held while a frame is rendered and while the scene is disposed: a camera released at shutdown while another
    // thread still renders from it must not free the native images under that render.
    private readonly Lock _native = new();
    private bool _disposed;

    /// <summary>Creates the scene; <paramref name="board"/> defaults to the built-in head board (owned then).</summary>
    public SyntheticScene(SyntheticScenario scenario, CameraIntrinsics intrinsics, MarkerBoard? board = null, int seed = 1, double noiseSigma = 2.0)
    {
        ArgumentNullException.ThrowIfNull(intrinsics);
        Scenario = scenario;
        Intrinsics = intrinsics;
        _ownsBoard = board is null;
        Board = board ?? MarkerBoard.DefaultHeadBoard();
        _seed = seed;
        NoiseSigma = scenario == SyntheticScenario.Noise ? Math.Max(noiseSigma, 10) : noiseSigma;
        _texture = BuildTexture(Board, seed);
        // Anti-aliasing: bilinear sampling of a texture finer than the image aliases the board's
        // edges (a pose bias of ~0.04 mm at 720p); low-pass the texture to the image's sampling first.
        var imagePxPerMm = intrinsics.FxPx / RestCameraFromHead.Translation.Z;
        var ratio = TexturePxPerMm / imagePxPerMm;
        if (ratio > 1) Cv2.GaussianBlur(_texture, _texture, new Size(0, 0), 0.5 * ratio);
        _background = BuildBackground(intrinsics.WidthPx, intrinsics.HeightPx, seed);
        (_normX, _normY) = UndistortAllPixels(intrinsics);
        _mapX = new float[_normX.Length];
        _mapY = new float[_normX.Length];
    }

    public SyntheticScenario Scenario { get; }
    public CameraIntrinsics Intrinsics { get; }

    /// <summary>When the Jerk scenario's jerk starts, scene seconds. Default 1.0. May be moved while frames are rendered (a test schedules the jerk once a session runs).</summary>
    public double JerkAtSeconds { get => Volatile.Read(ref _jerkAtSeconds); set => Volatile.Write(ref _jerkAtSeconds, value); }

    private double _jerkAtSeconds = 1.0;

    /// <summary>Jerk scenario: when &gt; 0, the head jerks again every this many seconds, alternately 5 mm out and back. Default 0 (once).</summary>
    public double JerkRepeatSeconds { get; init; }

    /// <summary>Scene times at which jerks start, up to <paramref name="untilS"/>.</summary>
    public IEnumerable<double> JerkTimes(double untilS)
    {
        if (Scenario != SyntheticScenario.Jerk) yield break;
        for (var t = JerkAtSeconds; t <= untilS; t += JerkRepeatSeconds)
        {
            yield return t;
            if (JerkRepeatSeconds <= 0) yield break;
        }
    }
    public MarkerBoard Board { get; }

    /// <summary>Standard deviation of the additive Gaussian sensor noise, grey levels.</summary>
    public double NoiseSigma { get; }

    /// <summary>The head's rest pose T_CH: 110 mm in front of the camera, tilted about 15° and 10°.</summary>
    public static RigidTransform RestCameraFromHead { get; } = BuildRest();

    /// <summary>Ground truth T_CH at scene time <paramref name="tS"/> (seconds from the start).</summary>
    public RigidTransform TruthAt(double tS)
    {
        var (d, w) = Motion(Scenario, tS, JerkAtSeconds, JerkRepeatSeconds);
        var rest = Rotations.RotationMatrix(RestCameraFromHead);
        var r = Rotations.Multiply(Rotations.MatrixFromVector(w), rest);
        return Rotations.FromMatrix(r, RestCameraFromHead.Translation + d);
    }

    /// <summary>False while the board is fully hidden (the Lost scenario after 0.5 s).</summary>
    public bool BoardVisibleAt(double tS) => !(Scenario == SyntheticScenario.Lost && tS >= 0.5);

    /// <summary>Renders the frame at scene time <paramref name="tS"/>; <paramref name="frameIndex"/> seeds its noise. BGR 8UC3; the caller disposes it.</summary>
    public Mat Render(double tS, long frameIndex) => RenderPose(TruthAt(tS), tS, frameIndex);

    /// <summary>
    /// Renders the scene seen from an arbitrary pose <paramref name="cameraFromBoard"/> (T_CH: the
    /// board's frame H in the camera frame, mm), e.g. a calibration view. The scenario's scripted
    /// disturbances (occluders, motion blur, lighting) are those of scene time 0; lens softness and
    /// sensor noise (seeded by <paramref name="frameIndex"/>) are applied as usual. BGR 8UC3; the caller disposes it.
    /// </summary>
    public Mat RenderAt(RigidTransform cameraFromBoard, long frameIndex) => RenderPose(cameraFromBoard, 0.0, frameIndex);

    private Mat RenderPose(RigidTransform pose, double tS, long frameIndex)
    {
        lock (_native)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return RenderPoseCore(pose, tS, frameIndex);
        }
    }

    private Mat RenderPoseCore(RigidTransform pose, double tS, long frameIndex)
    {
        var image = _background.Clone();
        WarpPatch(pose, image);
        // Before the occluders (a finger covers dots too) and before lens blur and noise (dots are on the skin).
        var healed = Volatile.Read(ref _healedDots);
        if (healed.Length > 0) DrawHealedDots(pose, healed, image);
        DrawOccluders(tS, pose, image);

        if (Scenario == SyntheticScenario.Blur) ApplyMotionBlur(tS, image, exposureS: 0.020);
        // Lens and sensor softness: real corners are never one-pixel steps.
        Cv2.GaussianBlur(image, image, new Size(0, 0), 0.6);

        if (Scenario == SyntheticScenario.Lighting)
        {
            var gain = 0.85 + (0.4 * Math.Sin(2 * Math.PI * 0.5 * tS));
            image.ConvertTo(image, MatType.CV_8UC3, gain, 8 * Math.Sin(2 * Math.PI * 0.3 * tS));
        }
        AddNoise(image, frameIndex);
        return image;
    }

    /// <summary>
    /// Healed pigment dots of earlier sessions on the curved scalp, frame H (not on the board's plane). Empty by
    /// default, and then every frame is exactly what it was before dots existed. Settable at any time from any thread:
    /// a frame uses the set that was current when its rendering started.
    /// </summary>
    public IReadOnlyList<HealedDot> HealedDots
    {
        get => Volatile.Read(ref _healedDots);
        set => Volatile.Write(ref _healedDots, [.. value ?? throw new ArgumentNullException(nameof(value))]);
    }

    private HealedDot[] _healedDots = [];

    /// <summary>The board's plane outline of the patch of skin the scene models: an ellipse of these semi-axes about H's origin, mm.</summary>
    public static (double SemiXMm, double SemiYMm) SkinPatchSemiAxesMm => (PatchWidthMm / 2, PatchHeightMm / 2);

    /// <summary>The white sticker the board is printed on, as half-extents about H's origin on the board's plane, mm.</summary>
    public (double HalfWidthMm, double HalfHeightMm) StickerHalfExtentMm => ((Board.WidthMm / 2) + StickerMarginMm, (Board.HeightMm / 2) + StickerMarginMm);

    /// <summary>
    /// True when the camera at <paramref name="cameraFromHead"/> (T_CH) would show <paramref name="dot"/>: in front of the
    /// camera, its skin facing the camera, not behind the board's sticker (the sticker lies on the board's plane Z = 0 of
    /// H, above the skin) and on the patch of skin the scene models (see <see cref="SkinPatchSemiAxesMm"/>).
    /// </summary>
    public bool HealedDotVisible(RigidTransform cameraFromHead, HealedDot dot)
    {
        var pC = cameraFromHead.Apply(dot.PointH);
        if (pC.Z <= 1) return false;
        var cameraH = Rotations.Inverse(cameraFromHead).Translation;
        if (Vec3.Dot(dot.NormalH, cameraH - dot.PointH) <= 0) return false;
        // Where the line of sight crosses the board's plane: the sticker there hides the dot behind it.
        var onPlane = dot.PointH;
        if (dot.PointH.Z < 0 && cameraH.Z > 0)
        {
            var t = cameraH.Z / (cameraH.Z - dot.PointH.Z);
            onPlane = cameraH + ((dot.PointH - cameraH) * t);
        }
        var (hx, hy) = StickerHalfExtentMm;
        if (Math.Abs(onPlane.X) <= hx && Math.Abs(onPlane.Y) <= hy) return false;
        var (ax, ay) = SkinPatchSemiAxesMm;
        return ((onPlane.X / ax) * (onPlane.X / ax)) + ((onPlane.Y / ay) * (onPlane.Y / ay)) < 1;
    }

    private void DrawHealedDots(RigidTransform pose, HealedDot[] dots, Mat image)
    {
        // Healed SMP pigment seen through the epidermis: a blue-black grey, never black (BGR).
        const double PigmentB = 72, PigmentG = 60, PigmentR = 54;
        // The pigment's edge spreads a little into the dermis: a soft edge of this standard deviation, mm.
        const double SpreadMm = 0.035;
        foreach (var dot in dots)
        {
            if (!HealedDotVisible(pose, dot)) continue;
            var n = dot.NormalH.Normalized();
            var u = Vec3.Cross(n, Math.Abs(n.X) < 0.9 ? new Vec3(1, 0, 0) : new Vec3(0, 1, 0)).Normalized();
            var v = Vec3.Cross(n, u);
            // The skin's tangent plane at the dot mapped to pixels (distortion included, linearised at the dot):
            // a round dot on slanted skin is an ellipse in the image (foreshortening).
            const double StepMm = 0.05;
            var c = Intrinsics.Project(pose.Apply(dot.PointH));
            var cu = Intrinsics.Project(pose.Apply(dot.PointH + (u * StepMm)));
            var cv = Intrinsics.Project(pose.Apply(dot.PointH + (v * StepMm)));
            double j00 = (cu.X - c.X) / StepMm, j10 = (cu.Y - c.Y) / StepMm, j01 = (cv.X - c.X) / StepMm, j11 = (cv.Y - c.Y) / StepMm;
            var det = (j00 * j11) - (j01 * j10);
            if (Math.Abs(det) < 1e-9) continue;
            double i00 = j11 / det, i01 = -j01 / det, i10 = -j10 / det, i11 = j00 / det;
            var radiusMm = dot.DiameterMm / 2;
            // A pixel integrates over its own footprint too (a box of one pixel: variance 1/12 px²).
            var pxMm = 1 / Math.Sqrt(Math.Abs(det));
            var sigmaMm = Math.Sqrt((SpreadMm * SpreadMm) + (pxMm * pxMm / 12));
            var reachPx = (radiusMm + (4 * sigmaMm)) * Math.Max(Math.Max(Math.Abs(j00), Math.Abs(j01)), Math.Max(Math.Abs(j10), Math.Abs(j11))) * 1.5;
            var x0 = Math.Max(0, (int)Math.Floor(c.X - reachPx));
            var x1 = Math.Min(image.Cols - 1, (int)Math.Ceiling(c.X + reachPx));
            var y0 = Math.Max(0, (int)Math.Floor(c.Y - reachPx));
            var y1 = Math.Min(image.Rows - 1, (int)Math.Ceiling(c.Y + reachPx));
            var darkness = Math.Clamp(dot.Darkness, 0, 1);
            for (var y = y0; y <= y1; y++)
            {
                for (var x = x0; x <= x1; x++)
                {
                    // Pixel centres are at integer coordinates (OpenCV's convention, as the warp above uses).
                    double dx = x - c.X, dy = y - c.Y;
                    var su = (i00 * dx) + (i01 * dy);
                    var sv = (i10 * dx) + (i11 * dy);
                    var dMm = Math.Sqrt((su * su) + (sv * sv));
                    // A disc blurred by a Gaussian edge; the logistic with scale 0.588·σ is the normal CDF to within 1 %.
                    var cover = 1 / (1 + Math.Exp((dMm - radiusMm) / (0.588 * sigmaMm)));
                    var a = cover * darkness;
                    if (a < 0.002) continue;
                    ref var p = ref image.At<Vec3b>(y, x);
                    p = new Vec3b(
                        (byte)Math.Round((p.Item0 * (1 - a)) + (PigmentB * a)),
                        (byte)Math.Round((p.Item1 * (1 - a)) + (PigmentG * a)),
                        (byte)Math.Round((p.Item2 * (1 - a)) + (PigmentR * a)));
                }
            }
        }
    }

    private static (Vec3 D, Vec3 W) Motion(SyntheticScenario scenario, double t, double jerkAtS, double jerkRepeatS)
    {
        const double deg = Math.PI / 180;
        switch (scenario)
        {
            case SyntheticScenario.Drift:
                return (new Vec3(0.6, 0.3, -0.2) * t, new Vec3(0, 0.2 * deg, 0) * t);
            case SyntheticScenario.Sway:
            {
                var a = 2 * Math.PI * 0.25 * t;
                return (new Vec3(2.0 * Math.Sin(a), 0.8 * Math.Sin(a + 0.7), 0.6 * Math.Sin(a + 1.3)), new Vec3(0.4 * deg * Math.Sin(a + 0.3), 0, 0));
            }
            case SyntheticScenario.Blur:
            {
                var a = 2 * Math.PI * 1.0 * t;
                return (new Vec3(3.0 * Math.Sin(a), 0.8 * Math.Sin(a + 0.5), 0), Vec3.Zero);
            }
            case SyntheticScenario.Jerk:
            {
                // Repeating: jerk k (k = 0, 1, ...) starts at jerkAt + k·repeat and goes out (even k) or back (odd k).
                var k = jerkRepeatS > 0 && t > jerkAtS ? Math.Floor((t - jerkAtS) / jerkRepeatS) : 0;
                var start = jerkAtS + (k * jerkRepeatS);
                var s = Math.Clamp((t - start) / 0.020, 0, 1);
                s = s * s * (3 - (2 * s)); // smoothstep: a fast but finite move
                var x = k % 2 == 0 ? 5.0 * s : 5.0 * (1 - s);
                return (new Vec3(x, 0, 0), Vec3.Zero);
            }
            default:
                return (Vec3.Zero, Vec3.Zero);
        }
    }

    private static RigidTransform BuildRest()
    {
        const double deg = Math.PI / 180;
        // H faces the camera: its Z points back at the camera, its Y up (camera Y is down).
        double[] facing = [1, 0, 0, 0, -1, 0, 0, 0, -1];
        var tilt = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(15 * deg, 0, 0)), Rotations.MatrixFromVector(new Vec3(0, -10 * deg, 5 * deg)));
        return Rotations.FromMatrix(Rotations.Multiply(tilt, facing), new Vec3(2.0, -1.5, 110.0));
    }

    private void WarpPatch(RigidTransform pose, Mat image)
    {
        // Plane Z=0 of H → normalised camera coordinates is the homography [r1 r2 t]; invert it to
        // find, for every (undistorted) camera pixel, the point of the patch it sees.
        var r = Rotations.RotationMatrix(pose);
        var t = pose.Translation;
        double[] h = [r[0], r[1], t.X, r[3], r[4], t.Y, r[6], r[7], t.Z];
        var hi = Invert3(h);
        var left = -PatchWidthMm / 2;
        var top = PatchHeightMm / 2;
        for (var i = 0; i < _normX.Length; i++)
        {
            double x = _normX[i], y = _normY[i];
            var w = (hi[6] * x) + (hi[7] * y) + hi[8];
            var X = ((hi[0] * x) + (hi[1] * y) + hi[2]) / w;
            var Y = ((hi[3] * x) + (hi[4] * y) + hi[5]) / w;
            _mapX[i] = (float)(((X - left) * TexturePxPerMm) - 0.5);
            _mapY[i] = (float)(((top - Y) * TexturePxPerMm) - 0.5);
        }
        using var mapX = new Mat(image.Rows, image.Cols, MatType.CV_32FC1);
        using var mapY = new Mat(image.Rows, image.Cols, MatType.CV_32FC1);
        Marshal.Copy(_mapX, 0, mapX.Data, _mapX.Length);
        Marshal.Copy(_mapY, 0, mapY.Data, _mapY.Length);
        Cv2.Remap(_texture, image, mapX, mapY, InterpolationFlags.Linear, BorderTypes.Transparent);
    }

    private void DrawOccluders(double tS, RigidTransform pose, Mat image)
    {
        var glove = new Scalar(185, 140, 95);
        if (Scenario == SyntheticScenario.Occlusion)
        {
            // A fingertip sliding in from the right, ending over about the right third of the board.
            var reach = Math.Clamp(tS / 0.5, 0, 1);
            var tipX = (Board.WidthMm / 2) + 6 - (reach * 16);
            Vec3[] finger = [new(tipX, 6, 0.5), new(tipX + 2, 9, 0.5), new(40, 12, 0.5), new(40, -10, 0.5), new(tipX + 2, -7, 0.5), new(tipX, -4, 0.5)];
            FillProjected(pose, finger, glove, image);
        }
        else if (Scenario == SyntheticScenario.Lost && !BoardVisibleAt(tS))
        {
            Vec3[] hand = [new(-24, 20, 3), new(24, 22, 3), new(30, -18, 3), new(-26, -21, 3)];
            FillProjected(pose, hand, glove, image);
        }
    }

    private void FillProjected(RigidTransform pose, Vec3[] polygonH, Scalar color, Mat image)
    {
        var pts = polygonH.Select(p => Intrinsics.Project(pose.Apply(p))).Select(p => new Point((int)Math.Round(p.X * 16), (int)Math.Round(p.Y * 16))).ToArray();
        Cv2.FillPoly(image, [pts], color, LineTypes.AntiAlias, shift: 4);
    }

    private void ApplyMotionBlur(double tS, Mat image, double exposureS)
    {
        var a = Intrinsics.Project(TruthAt(tS - (exposureS / 2)).Translation);
        var b = Intrinsics.Project(TruthAt(tS + (exposureS / 2)).Translation);
        var dx = b.X - a.X;
        var dy = b.Y - a.Y;
        var lengthPx = Math.Sqrt((dx * dx) + (dy * dy));
        if (lengthPx < 1) return;
        var size = ((int)Math.Ceiling(lengthPx) | 1) + 2;
        using var kernel = new Mat(size, size, MatType.CV_32FC1, Scalar.All(0));
        var c = size / 2.0;
        Cv2.Line(kernel, new Point((int)Math.Round((c - (dx / 2)) * 16), (int)Math.Round((c - (dy / 2)) * 16)), new Point((int)Math.Round((c + (dx / 2)) * 16), (int)Math.Round((c + (dy / 2)) * 16)), Scalar.All(1), 1, LineTypes.AntiAlias, 4);
        var sum = Cv2.Sum(kernel).Val0;
        if (sum <= 0) return;
        kernel.ConvertTo(kernel, MatType.CV_32FC1, 1.0 / sum);
        Cv2.Filter2D(image, image, -1, kernel);
    }

    private void AddNoise(Mat image, long frameIndex)
    {
        if (NoiseSigma <= 0) return;
        var rng = new RNG(unchecked((ulong)((_seed * 1_000_003L) + frameIndex + 1)));
        using var noise = new Mat(image.Size(), MatType.CV_16SC3);
        rng.Fill(noise, DistributionType.Normal, new Scalar(0, 0, 0), new Scalar(NoiseSigma, NoiseSigma, NoiseSigma));
        using var wide = new Mat();
        image.ConvertTo(wide, MatType.CV_16SC3);
        Cv2.Add(wide, noise, wide);
        wide.ConvertTo(image, MatType.CV_8UC3); // saturates at 0 and 255
    }

    private static Mat BuildTexture(MarkerBoard board, int seed)
    {
        var w = (int)Math.Round(PatchWidthMm * TexturePxPerMm);
        var h = (int)Math.Round(PatchHeightMm * TexturePxPerMm);
        var texture = new Mat(h, w, MatType.CV_8UC3, new Scalar(122, 152, 205)); // skin, BGR
        var rng = new RNG(unchecked((ulong)(seed + 17)));

        // Low-frequency skin tone variation.
        using (var low = new Mat(12, 14, MatType.CV_16SC3))
        using (var lowUp = new Mat())
        using (var wide = new Mat())
        {
            rng.Fill(low, DistributionType.Normal, new Scalar(0, 0, 0), new Scalar(9, 9, 9));
            Cv2.Resize(low, lowUp, texture.Size(), 0, 0, InterpolationFlags.Cubic);
            texture.ConvertTo(wide, MatType.CV_16SC3);
            Cv2.Add(wide, lowUp, wide);
            wide.ConvertTo(texture, MatType.CV_8UC3);
        }

        // Stubble: small dark dots, as on a shaved scalp.
        for (var i = 0; i < 2500; i++)
        {
            var p = new Point(rng.Uniform(0, w), rng.Uniform(0, h));
            Cv2.Circle(texture, p, rng.Uniform(1, 3), new Scalar(55, 60, 70), -1, LineTypes.AntiAlias);
        }

        // White sticker, then the board on it.
        var stickerW = (board.WidthMm + (2 * StickerMarginMm)) * TexturePxPerMm;
        var stickerH = (board.HeightMm + (2 * StickerMarginMm)) * TexturePxPerMm;
        var sx = (int)Math.Round((w - stickerW) / 2);
        var sy = (int)Math.Round((h - stickerH) / 2);
        Cv2.Rectangle(texture, new Rect(sx, sy, (int)Math.Round(stickerW), (int)Math.Round(stickerH)), new Scalar(232, 234, 236), -1);

        using var boardGray = board.Render(TexturePxPerMm);
        using var boardBgr = new Mat();
        // Print contrast: paper white ~235, ink ~30.
        boardGray.ConvertTo(boardGray, MatType.CV_8UC1, (235.0 - 30.0) / 255.0, 30);
        Cv2.CvtColor(boardGray, boardBgr, ColorConversionCodes.GRAY2BGR);
        // The board is centred on H's origin, which is the patch centre.
        var bx = (int)Math.Round(((PatchWidthMm - board.WidthMm) / 2) * TexturePxPerMm);
        var by = (int)Math.Round(((PatchHeightMm - board.HeightMm) / 2) * TexturePxPerMm);
        using (var roi = new Mat(texture, new Rect(bx, by, boardBgr.Cols, boardBgr.Rows)))
        {
            boardBgr.CopyTo(roi);
        }

        // Round the patch into a head-like ellipse: outside it, transparent-ish dark hair-line tone.
        using var mask = new Mat(h, w, MatType.CV_8UC1, Scalar.All(0));
        Cv2.Ellipse(mask, new RotatedRect(new Point2f(w / 2f, h / 2f), new Size2f(w, h), 0), Scalar.All(255), -1, LineTypes.AntiAlias);
        using var inverse = new Mat();
        Cv2.BitwiseNot(mask, inverse);
        texture.SetTo(new Scalar(60, 70, 85), inverse);
        return texture;
    }

    private static Mat BuildBackground(int width, int height, int seed)
    {
        var background = new Mat(height, width, MatType.CV_8UC3, new Scalar(48, 52, 58));
        var rng = new RNG(unchecked((ulong)(seed + 101)));
        using var low = new Mat(9, 16, MatType.CV_16SC3);
        using var lowUp = new Mat();
        using var wide = new Mat();
        rng.Fill(low, DistributionType.Normal, new Scalar(0, 0, 0), new Scalar(10, 10, 10));
        Cv2.Resize(low, lowUp, background.Size(), 0, 0, InterpolationFlags.Cubic);
        background.ConvertTo(wide, MatType.CV_16SC3);
        Cv2.Add(wide, lowUp, wide);
        wide.ConvertTo(background, MatType.CV_8UC3);
        return background;
    }

    private static (float[] X, float[] Y) UndistortAllPixels(CameraIntrinsics k)
    {
        var n = k.WidthPx * k.HeightPx;
        var pixels = new Point2f[n];
        for (var v = 0; v < k.HeightPx; v++)
        {
            for (var u = 0; u < k.WidthPx; u++) pixels[(v * k.WidthPx) + u] = new Point2f(u, v);
        }
        using var src = Mat.FromArray(pixels);
        using var dst = new Mat();
        using var cameraMatrix = k.CameraMatrix();
        using var distortion = k.DistortionMat();
        Cv2.UndistortPointsIter(src, dst, cameraMatrix, distortion, null, null, new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, 20, 1e-9));
        dst.GetArray(out Point2f[] normalised);
        var xs = new float[n];
        var ys = new float[n];
        for (var i = 0; i < n; i++)
        {
            xs[i] = normalised[i].X;
            ys[i] = normalised[i].Y;
        }
        return (xs, ys);
    }

    private static double[] Invert3(double[] m)
    {
        var det = (m[0] * ((m[4] * m[8]) - (m[5] * m[7]))) - (m[1] * ((m[3] * m[8]) - (m[5] * m[6]))) + (m[2] * ((m[3] * m[7]) - (m[4] * m[6])));
        var d = 1 / det;
        return
        [
            ((m[4] * m[8]) - (m[5] * m[7])) * d, ((m[2] * m[7]) - (m[1] * m[8])) * d, ((m[1] * m[5]) - (m[2] * m[4])) * d,
            ((m[5] * m[6]) - (m[3] * m[8])) * d, ((m[0] * m[8]) - (m[2] * m[6])) * d, ((m[2] * m[3]) - (m[0] * m[5])) * d,
            ((m[3] * m[7]) - (m[4] * m[6])) * d, ((m[1] * m[6]) - (m[0] * m[7])) * d, ((m[0] * m[4]) - (m[1] * m[3])) * d,
        ];
    }

    /// <summary>Waits for a render in progress, then frees the native images; a render after this throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_native)
        {
            if (_disposed) return;
            _disposed = true;
            _texture.Dispose();
            _background.Dispose();
            if (_ownsBoard) Board.Dispose();
        }
    }
}

/// <summary>A healed pigment dot of an earlier session, as the synthetic camera renders it.</summary>
/// <param name="PointH">Its centre on the skin, head frame H, mm.</param>
/// <param name="NormalH">The skin's outward unit normal there, frame H.</param>
/// <param name="DiameterMm">Healed diameter, mm (SMP: 0.2–0.6).</param>
/// <param name="Darkness">How far the skin's colour goes towards the pigment's blue-black grey, 0 (invisible) to 1.</param>
public readonly record struct HealedDot(Vec3 PointH, Vec3 NormalH, double DiameterMm, double Darkness);

/// <summary>
/// The synthetic scene as a frame source: each Read renders the scene at the TimeProvider's elapsed
/// time since the source was created and stamps the frame with that timestamp, so a FakeTimeProvider
/// steps it deterministically. Every frame carries its ground truth T_CH (null while the board is hidden).
/// </summary>
public sealed class SyntheticFrameSource : IFrameSource, IScalpView
{
    private readonly SyntheticScene _scene;
    private readonly TimeProvider _timeProvider;
    private readonly long _start;
    private long _sequence;

    public SyntheticFrameSource(SyntheticScene scene, TimeProvider timeProvider, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(scene);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _scene = scene;
        _timeProvider = timeProvider;
        _start = timeProvider.GetTimestamp();
        StartTimestamp = _start;
        Description = description ?? "synthetic:" + scene.Scenario.ToString().ToLowerInvariant();
    }

    public string Description { get; }
    public CameraIntrinsics Intrinsics => _scene.Intrinsics;
    CameraIntrinsics? IFrameSource.Intrinsics => _scene.Intrinsics;
    public bool PacesItself => false;
    public TimeSpan FrameInterval => TimeSpan.FromSeconds(1.0 / 30);

    /// <summary>The scene being rendered.</summary>
    public SyntheticScene Scene => _scene;

    /// <inheritdoc/>
    public DotSearchRegion DotSearchRegion => DotSearchRegion.ForScene(_scene);

    /// <summary>Timestamp (on this source's clock) of scene time 0.</summary>
    public long StartTimestamp { get; }

    /// <summary>Scene seconds at timestamp <paramref name="timestamp"/> of this source's clock.</summary>
    public double SceneSecondsAt(long timestamp) => (timestamp - StartTimestamp) / (double)_timeProvider.TimestampFrequency;

    public Frame Read()
    {
        var ts = _timeProvider.GetTimestamp();
        var tS = _timeProvider.GetElapsedTime(_start, ts).TotalSeconds;
        var seq = _sequence++;
        var image = _scene.Render(tS, seq);
        return new Frame(image, ts, seq, _scene.BoardVisibleAt(tS) ? _scene.TruthAt(tS) : null);
    }

    Frame? IFrameSource.Read() => Read();

    public void Dispose() => _scene.Dispose();
}
