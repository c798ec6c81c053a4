using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>
/// A camera that knows where the scalp's skin appears around the board (the region where healed dots are looked for).
/// The synthetic camera knows it from its scene; a real camera needs it measured for its board and mount.
/// </summary>
public interface IScalpView
{
    /// <summary>Where to look for dots, in the board's plane (frame H).</summary>
    DotSearchRegion DotSearchRegion { get; }
}

/// <summary>
/// Where on the head the camera looks for healed dots: a region of the board's plane (Z = 0 of the head frame H),
/// an outer ellipse about H's origin minus the board's sticker (and a margin, so a dot half under its edge is not
/// half seen). A point off the plane belongs to the region when the camera's line of sight to it crosses the plane
/// inside the region: that is what the camera sees there.
/// </summary>
/// <param name="OuterSemiXMm">Outer ellipse's semi-axis along H's X, mm.</param>
/// <param name="OuterSemiYMm">Outer ellipse's semi-axis along H's Y, mm.</param>
/// <param name="ExcludedHalfWidthMm">Half the excluded rectangle's width along X (sticker plus margin), mm.</param>
/// <param name="ExcludedHalfHeightMm">Half the excluded rectangle's height along Y, mm.</param>
public sealed record DotSearchRegion(double OuterSemiXMm, double OuterSemiYMm, double ExcludedHalfWidthMm, double ExcludedHalfHeightMm)
{
    /// <summary>The synthetic scene's skin patch, 2 mm inside its edge, without its sticker and 1 mm around it.</summary>
    public static DotSearchRegion ForScene(SyntheticScene scene)
    {
        ArgumentNullException.ThrowIfNull(scene);
        var (ax, ay) = SyntheticScene.SkinPatchSemiAxesMm;
        var (hx, hy) = scene.StickerHalfExtentMm;
        return new DotSearchRegion(ax - 2, ay - 2, hx + 1, hy + 1);
    }

    /// <summary>True when (<paramref name="xMm"/>, <paramref name="yMm"/>) of the board's plane is in the region.</summary>
    public bool ContainsOnPlane(double xMm, double yMm)
    {
        if (Math.Abs(xMm) <= ExcludedHalfWidthMm && Math.Abs(yMm) <= ExcludedHalfHeightMm) return false;
        var ex = xMm / OuterSemiXMm;
        var ey = yMm / OuterSemiYMm;
        return (ex * ex) + (ey * ey) < 1;
    }

    /// <summary>True when the line of sight from <paramref name="cameraH"/> (the camera's centre in H) to <paramref name="pointH"/> crosses the board's plane in the region (or the point is on or above the plane and in it).</summary>
    public bool Contains(Vec3 cameraH, Vec3 pointH)
    {
        var onPlane = pointH;
        if (Math.Abs(cameraH.Z - pointH.Z) > 1e-9 && cameraH.Z > 0 && pointH.Z < 0)
        {
            var t = cameraH.Z / (cameraH.Z - pointH.Z);
            onPlane = cameraH + ((pointH - cameraH) * t);
        }
        return ContainsOnPlane(onPlane.X, onPlane.Y);
    }
}

/// <summary>
/// One dark spot found in a frame: its sub-pixel centre, the ray through it in the head frame H (the frame's head
/// pose and the camera's intrinsics, lens distortion included), its size and how dark it is.
/// </summary>
/// <param name="XPx">Centre, distorted pixel coordinates (pixel centres at integers).</param>
/// <param name="YPx">Centre, px.</param>
/// <param name="OriginH">The camera's centre in H, mm.</param>
/// <param name="DirectionH">Unit direction of the ray through the centre, frame H.</param>
/// <param name="DiameterMm">Apparent diameter at the distance of the board's plane along the ray (full width at half depth), mm.</param>
/// <param name="Contrast">How much darker than the skin around it, as a fraction of the skin's grey level (0–1).</param>
public sealed record DetectedDot(double XPx, double YPx, Vec3 OriginH, Vec3 DirectionH, double DiameterMm, double Contrast);

/// <summary>Tuning of <see cref="HealedDotDetector"/>.</summary>
public sealed record DotDetectorOptions
{
    /// <summary>Smallest apparent diameter kept, mm.</summary>
    public double MinDiameterMm { get; init; } = 0.15;

    /// <summary>Largest apparent diameter kept, mm.</summary>
    public double MaxDiameterMm { get; init; } = 0.8;

    /// <summary>Smallest depth of a spot below its surroundings, grey levels (the sensor's noise is about 2).</summary>
    public double MinDepthGrey { get; init; } = 12;

    /// <summary>Pixels this close to the image's edge are not searched (a spot there is cut).</summary>
    public int BorderPx { get; init; } = 6;
}

/// <summary>
/// Finds dark spots of sub-millimetre size (healed SMP dots, and whatever else is dark and small: stubble, pores) in
/// a camera frame, inside a <see cref="DotSearchRegion"/>, and returns each as a ray in the head frame H. Dark spots
/// are the morphological black-hat (closing minus image) of the grey image: it keeps what is darker than its
/// surroundings and smaller than the structuring element, whatever the skin's tone and its slow variations. Each local
/// maximum of the (lightly smoothed) black-hat is a spot; its centre is the black-hat-weighted centroid around it,
/// its size the area above half its depth. Stateless and thread-safe; a 1280×720 frame takes a few milliseconds.
/// </summary>
public sealed class HealedDotDetector(CameraIntrinsics intrinsics, DotDetectorOptions? options = null)
{
    private readonly CameraIntrinsics _intrinsics = intrinsics ?? throw new ArgumentNullException(nameof(intrinsics));
    private readonly DotDetectorOptions _options = options ?? new DotDetectorOptions();

    /// <summary>The intrinsics the rays are computed with.</summary>
    public CameraIntrinsics Intrinsics => _intrinsics;

    /// <summary>
    /// The dark spots of <paramref name="image"/> (BGR 8UC3 or grey 8UC1) within <paramref name="region"/>, seen with the
    /// head pose <paramref name="cameraFromHead"/> (T_CH of the frame), in no particular order.
    /// </summary>
    public IReadOnlyList<DetectedDot> Detect(Mat image, RigidTransform cameraFromHead, DotSearchRegion region)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(region);
        var headFromCamera = Rotations.Inverse(cameraFromHead);
        var cameraH = headFromCamera.Translation;
        // Pixels per mm on the board's plane: the black-hat's element and the size limits in pixels.
        var distanceMm = Math.Abs(cameraFromHead.Translation.Z);
        var pxPerMm = _intrinsics.FxPx / Math.Max(distanceMm, 1);

        using var gray = new Mat();
        if (image.Channels() == 3) Cv2.CvtColor(image, gray, ColorConversionCodes.BGR2GRAY);
        else image.CopyTo(gray);
        using var mask = RegionMask(cameraFromHead, region, image.Size());
        // The element must be wider than the largest spot, else a large spot's centre is filled in. A square one on
        // 8-bit grey: OpenCV separates it into rows and columns (an ellipse costs its area per pixel, 5× the time).
        var elementPx = ((int)Math.Ceiling(_options.MaxDiameterMm * 1.3 * pxPerMm)) | 1;
        using var element = Cv2.GetStructuringElement(MorphShapes.Rect, new Size(elementPx, elementPx));
        using var closed8 = new Mat();
        Cv2.MorphologyEx(gray, closed8, MorphTypes.Close, element);
        using var blackHat8 = new Mat();
        Cv2.Subtract(closed8, gray, blackHat8);
        using var blackHat = new Mat();
        blackHat8.ConvertTo(blackHat, MatType.CV_32FC1);
        using var closed = new Mat();
        closed8.ConvertTo(closed, MatType.CV_32FC1);
        using var smooth = new Mat();
        Cv2.GaussianBlur(blackHat, smooth, new Size(0, 0), 0.8);
        using var dilated = new Mat();
        Cv2.Dilate(smooth, dilated, null);

        var width = image.Cols;
        var height = image.Rows;
        smooth.GetArray(out float[] s);
        dilated.GetArray(out float[] d);
        blackHat.GetArray(out float[] bh);
        closed.GetArray(out float[] cl);
        mask.GetArray(out byte[] m);

        var centres = new List<(double X, double Y, double DiameterPx, double Contrast)>();
        var b = _options.BorderPx;
        var maxRadiusPx = (int)Math.Ceiling(_options.MaxDiameterMm * pxPerMm);
        // Flood fills mark the pixels they reached with their own number: no clearing between spots.
        var visited = new int[width * height];
        var stamp = 0;
        for (var y = b; y < height - b; y++)
        {
            var row = y * width;
            for (var x = b; x < width - b; x++)
            {
                var i = row + x;
                var v = s[i];
                if (v < _options.MinDepthGrey || v < d[i] || m[i] == 0) continue;
                // A plateau of equal maxima: keep only its first pixel.
                if (s[i - 1] == v || s[i - width] == v || s[i - width - 1] == v || s[i - width + 1] == v) continue;
                if (Measure(bh, width, height, x, y, maxRadiusPx, visited, ++stamp) is not { } spot) continue;
                var contrast = bh[i] / Math.Max(cl[i], 1);
                centres.Add((spot.X, spot.Y, spot.DiameterPx, contrast));
            }
        }
        if (centres.Count == 0) return [];

        // Rays: the centres undistorted to normalised camera coordinates, then turned into H.
        var pixels = centres.Select(c => new Point2d(c.X, c.Y)).ToArray();
        using var src = Mat.FromArray(pixels);
        using var dst = new Mat();
        using var cameraMatrix = _intrinsics.CameraMatrix();
        using var distortion = _intrinsics.DistortionMat();
        Cv2.UndistortPointsIter(src, dst, cameraMatrix, distortion, null, null, new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, 20, 1e-9));
        dst.GetArray(out Point2d[] normalised);
        var dots = new List<DetectedDot>(centres.Count);
        for (var k = 0; k < centres.Count; k++)
        {
            var dirC = new Vec3(normalised[k].X, normalised[k].Y, 1);
            var dirH = (headFromCamera.Apply(dirC) - cameraH).Normalized();
            // The ray's length to the board's plane gives its mm per pixel there.
            var rangeMm = cameraH.Z > 0 && dirH.Z < 0 ? cameraH.Z / -dirH.Z : distanceMm;
            var mmPerPx = rangeMm / dirC.Length / _intrinsics.FxPx;
            var diameterMm = centres[k].DiameterPx * mmPerPx;
            if (diameterMm < _options.MinDiameterMm || diameterMm > _options.MaxDiameterMm) continue;
            var onPlane = cameraH + (dirH * rangeMm);
            if (!region.ContainsOnPlane(onPlane.X, onPlane.Y)) continue;
            dots.Add(new DetectedDot(centres[k].X, centres[k].Y, cameraH, dirH, diameterMm, centres[k].Contrast));
        }
        return dots;
    }

    /// <summary>
    /// A spot's centre and size from the raw black-hat around its maximum: the pixels above half its depth connected
    /// to it (a flood fill, so a neighbouring spot is not counted), their area as a disc's diameter, and the centroid
    /// of their depth above that half level. Null when the spot is wider than the search window.
    /// </summary>
    private static (double X, double Y, double DiameterPx)? Measure(float[] bh, int width, int height, int x0, int y0, int maxRadiusPx, int[] visited, int stamp)
    {
        // The peak of the raw response near the smoothed maximum.
        var peak = 0f;
        for (var dy = -1; dy <= 1; dy++)
        {
            for (var dx = -1; dx <= 1; dx++) peak = Math.Max(peak, bh[((y0 + dy) * width) + x0 + dx]);
        }
        var half = peak / 2;
        var stack = new Stack<(int X, int Y)>();
        stack.Push((x0, y0));
        visited[(y0 * width) + x0] = stamp;
        double sw = 0, sx = 0, sy = 0;
        var area = 0;
        while (stack.Count > 0)
        {
            var (x, y) = stack.Pop();
            var v = bh[(y * width) + x];
            if (v < half) continue;
            if (Math.Abs(x - x0) > maxRadiusPx || Math.Abs(y - y0) > maxRadiusPx) return null;
            area++;
            var w = v - half;
            sw += w;
            sx += w * x;
            sy += w * y;
            for (var n = 0; n < 4; n++)
            {
                var nx = x + (n == 0 ? 1 : n == 1 ? -1 : 0);
                var ny = y + (n == 2 ? 1 : n == 3 ? -1 : 0);
                if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
                var ni = (ny * width) + nx;
                // Downhill or level only: a neighbouring spot's own rise is not followed.
                if (bh[ni] > v + 4 || visited[ni] == stamp) continue;
                visited[ni] = stamp;
                stack.Push((nx, ny));
            }
        }
        if (sw <= 0) return null;
        var diameterPx = 2 * Math.Sqrt(area / Math.PI);
        // Mean shift within a disc of the spot's own size: a dark neighbour (a stubble hair touching a dot) that the
        // fill above reached pulls the centroid less once only pixels near the centre count.
        double cx = sx / sw, cy = sy / sw;
        var reach = Math.Max(1.5, (0.5 * diameterPx) + 0.5);
        for (var iteration = 0; iteration < 3; iteration++)
        {
            double w2 = 0, x2 = 0, y2 = 0;
            var r = (int)Math.Ceiling(reach);
            var ix = (int)Math.Round(cx);
            var iy = (int)Math.Round(cy);
            for (var y = Math.Max(0, iy - r); y <= Math.Min(height - 1, iy + r); y++)
            {
                for (var x = Math.Max(0, ix - r); x <= Math.Min(width - 1, ix + r); x++)
                {
                    if (((x - cx) * (x - cx)) + ((y - cy) * (y - cy)) > reach * reach) continue;
                    var w = bh[(y * width) + x] - half;
                    if (w <= 0) continue;
                    w2 += w;
                    x2 += w * x;
                    y2 += w * y;
                }
            }
            if (w2 <= 0) break;
            cx = x2 / w2;
            cy = y2 / w2;
        }
        return (cx, cy, diameterPx);
    }

    /// <summary>The region projected into the image: 255 where spots are searched.</summary>
    private Mat RegionMask(RigidTransform cameraFromHead, DotSearchRegion region, Size size)
    {
        var mask = new Mat(size, MatType.CV_8UC1, Scalar.All(0));
        Point[] Outline(Func<double, Vec3> at, int n) =>
            Enumerable.Range(0, n).Select(k => _intrinsics.Project(cameraFromHead.Apply(at(k / (double)n))))
                .Select(p => new Point((int)Math.Round(p.X * 16), (int)Math.Round(p.Y * 16))).ToArray();
        // Sampled densely: the lens bends straight lines.
        var outer = Outline(t => new Vec3(region.OuterSemiXMm * Math.Cos(2 * Math.PI * t), region.OuterSemiYMm * Math.Sin(2 * Math.PI * t), 0), 180);
        Cv2.FillPoly(mask, [outer], Scalar.All(255), LineTypes.Link8, shift: 4);
        double hx = region.ExcludedHalfWidthMm, hy = region.ExcludedHalfHeightMm;
        Vec3 Rect(double t)
        {
            var s = t * 4;
            return s switch
            {
                < 1 => new Vec3(-hx + (2 * hx * s), hy, 0),
                < 2 => new Vec3(hx, hy - (2 * hy * (s - 1)), 0),
                < 3 => new Vec3(hx - (2 * hx * (s - 2)), -hy, 0),
                _ => new Vec3(-hx, -hy + (2 * hy * (s - 3)), 0),
            };
        }
        var excluded = Outline(Rect, 160);
        Cv2.FillPoly(mask, [excluded], Scalar.All(0), LineTypes.Link8, shift: 4);
        return mask;
    }
}
