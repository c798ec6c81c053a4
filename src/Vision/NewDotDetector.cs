using System.Runtime.InteropServices;
using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>Tuning of <see cref="NewDotDetector"/>.</summary>
public sealed record NewDotOptions
{
    /// <summary>Spacing of the samples on the skin's tangent plane, mm (finer than a pixel there: about 0.08 mm at 110 mm with the synthetic camera). Default 0.04.</summary>
    public double SampleMm { get; init; } = 0.04;

    /// <summary>
    /// Smallest darkening at a new spot's centre, as a fraction of the skin's grey level (the sensor's noise is about
    /// 0.02 of it between two frames; a pale healed dot darkens its centre by 0.2 or more). Default 0.12.
    /// </summary>
    public double MinDarkening { get; init; } = 0.12;

    /// <summary>Smallest diameter of a new spot (its darkening's area above half its peak, as a disc), mm. Default 0.15.</summary>
    public double MinDiameterMm { get; init; } = 0.15;

    /// <summary>Largest diameter of a new spot, mm: a larger change is not one dot (a finger, a wipe, the light). Default 0.8.</summary>
    public double MaxDiameterMm { get; init; } = 0.8;

    /// <summary>
    /// The skin at the target already this much darker than the skin around it, before the plunge (a stubble hair or an
    /// older dot right there, as dark as pigment): a dot placed there would not change the picture, so its absence
    /// says nothing. Fraction of the skin's grey level. Default 0.25.
    /// </summary>
    public double MaxDarkAtTarget { get; init; } = 0.25;

    /// <summary>Pixels this close to the image's edge are not used. Default 6.</summary>
    public int BorderPx { get; init; } = 6;
}

/// <summary>What <see cref="NewDotDetector.Find"/> concluded.</summary>
public enum NewDotOutcome
{
    /// <summary>One new spot of a dot's size appeared: <see cref="NewDotResult.PointH"/>.</summary>
    Found,

    /// <summary>Nothing darkened anywhere in the search disc, all of which the camera saw on skin that would have shown a dot.</summary>
    NotFound,

    /// <summary>The frames cannot say: part of the search disc is out of view, the spot found is cut by the edge of the view, the target was already dark, or the picture changed more than one dot would.</summary>
    CannotTell,
}

/// <summary>What changed on the skin around a point between two frames.</summary>
/// <param name="Outcome">Found, not found, or the frames cannot tell.</param>
/// <param name="PointH">The new spot's centre on the skin's tangent plane at the point, frame H; null unless found.</param>
/// <param name="DiameterMm">The new spot's diameter (its darkening's area above half its peak, as a disc), mm; 0 unless found.</param>
/// <param name="Darkening">The new spot's peak darkening, fraction of the skin's grey; 0 unless found.</param>
/// <param name="Reason">Why the frames cannot tell (empty otherwise).</param>
public sealed record NewDotResult(NewDotOutcome Outcome, Vec3? PointH, double DiameterMm, double Darkening, string Reason);

/// <summary>
/// Finds the pigment a plunge added: the skin around the target, on its tangent plane, is sampled in a frame taken
/// before the plunge and in one taken after (each through its own head pose and the camera's intrinsics, lens
/// distortion included), and the new dot is where the skin darkened. Whatever was dark before (stubble, older dots,
/// pores) darkens nothing and cancels out, however close to the new dot it lies: a dot placed on a stubble hair is
/// seen as the change it makes, not lost as "a spot that was there before". The darkening is relative to the skin's
/// grey around the target, with the overall brightness of the two frames equalised, so a change of light is not a
/// dot. Stateless and thread-safe; a search disc of 1 mm is a few thousand samples (milliseconds).
/// </summary>
public sealed class NewDotDetector(CameraIntrinsics intrinsics, NewDotOptions? options = null)
{
    private readonly CameraIntrinsics _intrinsics = intrinsics ?? throw new ArgumentNullException(nameof(intrinsics));
    private readonly NewDotOptions _options = options ?? new NewDotOptions();

    /// <summary>
    /// The new spot within <paramref name="radiusMm"/> of <paramref name="pointH"/> (a point of the skin, frame H, whose
    /// outward normal is <paramref name="normalH"/>) between <paramref name="before"/> and <paramref name="after"/>
    /// (BGR 8UC3 or grey 8UC1 frames of this camera, with their T_CH), where <paramref name="region"/> says the camera
    /// sees skin. The strongest change is the new dot (the plunge made one, and the frames hold no other: the caller
    /// takes them between the plunges before and after this one).
    /// </summary>
    public NewDotResult Find(Mat before, RigidTransform beforeCameraFromHead, Mat after, RigidTransform afterCameraFromHead, DotSearchRegion region, Vec3 pointH, Vec3 normalH, double radiusMm)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        ArgumentNullException.ThrowIfNull(region);
        if (!(radiusMm > 0)) throw new ArgumentOutOfRangeException(nameof(radiusMm), radiusMm, "the search radius must be positive");
        var step = _options.SampleMm;
        // The grid reaches half a large dot beyond the search disc, so a dot at its rim is seen whole.
        var half = (int)Math.Ceiling((radiusMm + (_options.MaxDiameterMm / 2)) / step);
        var n = (2 * half) + 1;
        var normal = normalH.Normalized();
        var u = Vec3.Cross(normal, Math.Abs(normal.X) < 0.9 ? new Vec3(1, 0, 0) : new Vec3(0, 1, 0)).Normalized();
        var v = Vec3.Cross(normal, u);

        var viewable = new bool[n * n];
        Array.Fill(viewable, true);
        using var greyBefore = Sample(before, beforeCameraFromHead, region, pointH, normal, u, v, half, viewable);
        using var greyAfter = Sample(after, afterCameraFromHead, region, pointH, normal, u, v, half, viewable);
        greyBefore.GetArray(out float[] b);
        greyAfter.GetArray(out float[] a);

        bool Unseen(int x, int y) => x == 0 || y == 0 || x == n - 1 || y == n - 1
            || !viewable[(y * n) + x - 1] || !viewable[(y * n) + x + 1] || !viewable[((y - 1) * n) + x] || !viewable[((y + 1) * n) + x];
        bool InDisc(int i, double r)
        {
            double x = (i % n) - half, y = (i / n) - half;
            return ((x * x) + (y * y)) * step * step <= r * r;
        }
        // The skin's grey level in each frame: the median of what is seen (stubble and dots are a small part of it).
        var seenBefore = new List<float>(n * n);
        var seenAfter = new List<float>(n * n);
        for (var i = 0; i < n * n; i++)
        {
            if (!viewable[i]) continue;
            seenBefore.Add(b[i]);
            seenAfter.Add(a[i]);
        }
        var centre = (half * n) + half;
        if (!viewable[centre]) return CannotTell("the target is out of the camera's view of the skin");
        var skinBefore = Median(seenBefore);
        var skinAfter = Median(seenAfter);
        if (skinBefore < 1 || skinAfter < 1) return CannotTell("the skin around the target is black in a frame");
        var gain = skinBefore / skinAfter;

        // Darkening, as a fraction of the skin's grey: zero where nothing changed, stubble included.
        var d = new float[n * n];
        for (var i = 0; i < n * n; i++) d[i] = viewable[i] ? (float)((b[i] - (a[i] * gain)) / skinBefore) : 0f;
        using var raw = new Mat(n, n, MatType.CV_32FC1);
        Marshal.Copy(d, 0, raw.Data, d.Length);
        using var smooth = new Mat();
        // About half a pixel of the image on the skin: the sensor's noise, not the dot, is smoothed.
        var pxMm = Math.Abs(beforeCameraFromHead.Apply(pointH).Z) / _intrinsics.FxPx;
        Cv2.GaussianBlur(raw, smooth, new Size(0, 0), Math.Max(0.5, 0.5 * pxMm / step));
        smooth.GetArray(out float[] s);

        // Connected parts above half the smallest darkening a dot makes; each part's own peak and half-peak area.
        var threshold = (float)(_options.MinDarkening / 2);
        var label = new int[n * n];
        var parts = new List<Part>();
        var stack = new Stack<int>();
        for (var i = 0; i < n * n; i++)
        {
            if (label[i] != 0 || !viewable[i] || s[i] < threshold) continue;
            var id = parts.Count + 1;
            var members = new List<int>();
            label[i] = id;
            stack.Push(i);
            while (stack.Count > 0)
            {
                var k = stack.Pop();
                members.Add(k);
                int x = k % n, y = k / n;
                for (var m = 0; m < 4; m++)
                {
                    var nx = x + (m == 0 ? 1 : m == 1 ? -1 : 0);
                    var ny = y + (m == 2 ? 1 : m == 3 ? -1 : 0);
                    if (nx < 0 || ny < 0 || nx >= n || ny >= n) continue;
                    var j = (ny * n) + nx;
                    if (label[j] != 0 || !viewable[j] || s[j] < threshold) continue;
                    label[j] = id;
                    stack.Push(j);
                }
            }
            var peak = members.Max(k => s[k]);
            if (peak < _options.MinDarkening) continue;
            double sw = 0, sx = 0, sy = 0, mass = 0;
            var area = 0;
            var cut = false;
            foreach (var k in members)
            {
                mass += s[k];
                var w = s[k] - (peak / 2);
                if (w < 0) continue;
                // The spot itself (above half its peak) reaching what the camera does not see may go on there: its centre is unknown.
                cut |= Unseen(k % n, k / n);
                area++;
                sw += w;
                sx += w * (k % n);
                sy += w * (k / n);
            }
            var diameterMm = 2 * Math.Sqrt(area * step * step / Math.PI);
            parts.Add(new Part((sx / sw) - half, (sy / sw) - half, diameterMm, peak, mass, cut));
        }

        // A change larger than any dot near the target: the picture changed for another reason; it cannot tell.
        if (parts.FirstOrDefault(p => p.DiameterMm > _options.MaxDiameterMm && Math.Sqrt((p.X * p.X) + (p.Y * p.Y)) * step <= radiusMm + (p.DiameterMm / 2)) is { } large)
        {
            return CannotTell(FormattableString.Invariant($"the skin changed over {large.DiameterMm:0.0} mm, more than one dot would"));
        }
        var candidates = parts.Where(p => p.DiameterMm >= _options.MinDiameterMm && p.DiameterMm <= _options.MaxDiameterMm && Math.Sqrt((p.X * p.X) + (p.Y * p.Y)) * step <= radiusMm).ToList();
        if (candidates.Count > 0)
        {
            var best = candidates.MaxBy(p => p.Mass)!;
            if (best.Cut) return CannotTell("the new spot is cut by the edge of the camera's view of the skin");
            var found = pointH + (u * (best.X * step)) + (v * (best.Y * step));
            return new NewDotResult(NewDotOutcome.Found, found, best.DiameterMm, best.Peak, "");
        }

        // Nothing new: an answer only when the whole disc was seen, and a dot at the target would have shown.
        for (var i = 0; i < n * n; i++)
        {
            if (!viewable[i] && InDisc(i, radiusMm)) return CannotTell("part of the search disc is out of the camera's view of the skin");
        }
        double dark = 0;
        var count = 0;
        var core = Math.Max(_options.MinDiameterMm / 2, step);
        for (var i = 0; i < n * n; i++)
        {
            if (!InDisc(i, core)) continue;
            dark += (skinBefore - b[i]) / skinBefore;
            count++;
        }
        if (dark / count > _options.MaxDarkAtTarget) return CannotTell("the skin at the target was already dark before the plunge (stubble or an older dot)");
        return new NewDotResult(NewDotOutcome.NotFound, null, 0, 0, "");
    }

    private static NewDotResult CannotTell(string reason) => new(NewDotOutcome.CannotTell, null, 0, 0, reason);

    private sealed record Part(double X, double Y, double DiameterMm, double Peak, double Mass, bool Cut);

    /// <summary>
    /// The frame's grey level at every point of the grid (bilinear), and which points it sees on skin: in front of
    /// the camera, the skin facing it, its line of sight inside the region, and inside the image by the border.
    /// </summary>
    private Mat Sample(Mat image, RigidTransform cameraFromHead, DotSearchRegion region, Vec3 pointH, Vec3 normal, Vec3 u, Vec3 v, int half, bool[] viewable)
    {
        var n = (2 * half) + 1;
        var step = _options.SampleMm;
        var cameraH = Rotations.Inverse(cameraFromHead).Translation;
        var facing = Vec3.Dot(normal, cameraH - pointH) > 0;
        var mapX = new float[n * n];
        var mapY = new float[n * n];
        var border = _options.BorderPx;
        for (var y = 0; y < n; y++)
        {
            for (var x = 0; x < n; x++)
            {
                var i = (y * n) + x;
                var p = pointH + (u * ((x - half) * step)) + (v * ((y - half) * step));
                var pC = cameraFromHead.Apply(p);
                if (pC.Z <= 1 || !facing)
                {
                    viewable[i] = false;
                    mapX[i] = mapY[i] = -1;
                    continue;
                }
                var px = _intrinsics.Project(pC);
                mapX[i] = (float)px.X;
                mapY[i] = (float)px.Y;
                if (px.X < border || px.Y < border || px.X > image.Cols - 1 - border || px.Y > image.Rows - 1 - border || !region.Contains(cameraH, p)) viewable[i] = false;
            }
        }
        using var mx = new Mat(n, n, MatType.CV_32FC1);
        using var my = new Mat(n, n, MatType.CV_32FC1);
        Marshal.Copy(mapX, 0, mx.Data, mapX.Length);
        Marshal.Copy(mapY, 0, my.Data, mapY.Length);
        using var sampled = new Mat();
        Cv2.Remap(image, sampled, mx, my, InterpolationFlags.Linear, BorderTypes.Constant, Scalar.All(0));
        using var grey = new Mat();
        if (sampled.Channels() == 3) Cv2.CvtColor(sampled, grey, ColorConversionCodes.BGR2GRAY);
        else sampled.CopyTo(grey);
        var result = new Mat();
        grey.ConvertTo(result, MatType.CV_32FC1);
        return result;
    }

    private static double Median(List<float> values)
    {
        if (values.Count == 0) return 0;
        values.Sort();
        return values[values.Count / 2];
    }
}
