using System.Globalization;
using OpenCvSharp;

namespace SmpRobot.Vision.Calibration;

/// <summary>Settings of the calibration pictures.</summary>
public sealed record PictureOptions
{
    /// <summary>Image width, px. Default 1100.</summary>
    public int WidthPx { get; init; } = 1100;

    /// <summary>Image height, px. Default 800.</summary>
    public int HeightPx { get; init; } = 800;

    /// <summary>Residual arrows are drawn this many times their true length; null picks a round factor so the longest inlier arrow spans about a tenth of the plot. Default null.</summary>
    public double? ArrowScale { get; init; }

    /// <summary>Unit of the histogram's values ("mm" for residuals, "px" for reprojection errors). Default "mm".</summary>
    public string Unit { get; init; } = "mm";

    /// <summary>Title line at the top. Default: a description of the picture.</summary>
    public string? Title { get; init; }

    /// <summary>Extra lines printed under the legend (e.g. calibration id, camera, date).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// PNG pictures of a camera-to-gantry fit for engineers: a top view of the residuals and a histogram
/// of their lengths. Drawn with OpenCV; each method returns the PNG bytes (for gRPC) and the Write…
/// variants store them in a file.
/// </summary>
public static class CalibrationPictures
{
    private const HersheyFonts Font = HersheyFonts.HersheySimplex;
    private static readonly Scalar White = new(255, 255, 255);
    private static readonly Scalar Black = new(20, 20, 20);
    private static readonly Scalar GridGrey = new(225, 225, 225);
    private static readonly Scalar AxisGrey = new(120, 120, 120);
    private static readonly Scalar OutlierRed = new(30, 30, 220);
    private static readonly Scalar[] LevelColours = [new(180, 100, 20), new(20, 130, 240), new(60, 160, 40), new(160, 60, 150), new(40, 90, 150), new(170, 170, 30)];

    /// <summary>Writes <see cref="ResidualsPng(RigidFitReport, PictureOptions?)"/> to <paramref name="path"/>; returns the arrow scale used.</summary>
    public static double WriteResidualsPng(string path, RigidFitReport report, PictureOptions? options = null)
    {
        var (png, scale) = ResidualsPng(report, options);
        File.WriteAllBytes(path, png);
        return scale;
    }

    /// <summary>Writes <see cref="ResidualsPng(IReadOnlyList{PointResidual}, PictureOptions?)"/> to <paramref name="path"/>; returns the arrow scale used.</summary>
    public static double WriteResidualsPng(string path, IReadOnlyList<PointResidual> points, PictureOptions? options = null)
    {
        var (png, scale) = ResidualsPng(points, options);
        File.WriteAllBytes(path, png);
        return scale;
    }

    /// <summary>The residual top view of a fit, with its fit and validation statistics in the legend.</summary>
    public static (byte[] Png, double ArrowScale) ResidualsPng(RigidFitReport report, PictureOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        options ??= new PictureOptions();
        var outliers = report.OutlierIndices;
        List<string> notes =
        [
            .. StatsLines("fit", report.Fit),
            .. StatsLines("validation", report.Validation),
            outliers.Count == 0 ? "outliers: none" : "outliers (point index): " + string.Join(", ", outliers.Select(i => i.ToString(CultureInfo.InvariantCulture))),
            .. options.Notes,
        ];
        return ResidualsPng(report.Points, options with { Notes = notes });
    }

    private static IEnumerable<string> StatsLines(string name, ResidualStats stats)
    {
        if (stats.Count == 0)
        {
            yield return name + ": no points";
            yield break;
        }
        yield return string.Create(CultureInfo.InvariantCulture, $"{name} ({stats.Count} points), mm:");
        yield return string.Create(CultureInfo.InvariantCulture, $"RMS {stats.RmsMm:0.000}  p95 {stats.P95Mm:0.000}  max {stats.MaxMm:0.000}");
        yield return string.Create(CultureInfo.InvariantCulture, $"r63 {stats.R63Mm:0.000}  r98 {stats.R98Mm:0.000}");
    }

    /// <summary>
    /// Top view (gantry X right, Y up, mm) of the measured positions (the target points, e.g. gantry
    /// positions): an arrow from each along its residual's XY part, scaled (stated in the legend),
    /// colour by height level (Z rounded to 0.5 mm), filled circles for fit points, open squares for
    /// validation points, red crosses for outliers (their arrows capped).
    /// </summary>
    public static (byte[] Png, double ArrowScale) ResidualsPng(IReadOnlyList<PointResidual> points, PictureOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        options ??= new PictureOptions();
        using var image = new Mat(options.HeightPx, options.WidthPx, MatType.CV_8UC3, White);
        var plot = new Rect(95, 60, options.WidthPx - 95 - 330, options.HeightPx - 60 - 70);
        Text(image, options.Title ?? "Camera-to-gantry residuals, top view", new Point(plot.X, 32), 0.7, Black, 2);
        if (points.Count == 0)
        {
            Text(image, "no points", new Point(plot.X + 20, plot.Y + 40), 0.6, Black);
            return (Encode(image), double.NaN);
        }

        // Equal scales on both axes, the data range padded by 12 %.
        double minX = points.Min(p => p.ToMm.X), maxX = points.Max(p => p.ToMm.X);
        double minY = points.Min(p => p.ToMm.Y), maxY = points.Max(p => p.ToMm.Y);
        var span = Math.Max(Math.Max(maxX - minX, maxY - minY), 1.0) * 1.24;
        var pxPerMm = Math.Min(plot.Width / span, plot.Height / span);
        var cxMm = (minX + maxX) / 2;
        var cyMm = (minY + maxY) / 2;
        Point2d ToPx(double xMm, double yMm) => new(plot.X + (plot.Width / 2.0) + ((xMm - cxMm) * pxPerMm), plot.Y + (plot.Height / 2.0) - ((yMm - cyMm) * pxPerMm));
        var x0 = cxMm - (plot.Width / 2.0 / pxPerMm);
        var x1 = cxMm + (plot.Width / 2.0 / pxPerMm);
        var y0 = cyMm - (plot.Height / 2.0 / pxPerMm);
        var y1 = cyMm + (plot.Height / 2.0 / pxPerMm);

        // Grid, ticks and axis labels in mm.
        var step = NiceStep(Math.Max(x1 - x0, y1 - y0) / 8);
        for (var x = Math.Ceiling(x0 / step) * step; x <= x1; x += step)
        {
            var px = (int)Math.Round(ToPx(x, 0).X);
            Cv2.Line(image, new Point(px, plot.Top), new Point(px, plot.Bottom), GridGrey, 1);
            CentredText(image, Format(x, step), new Point(px, plot.Bottom + 20), 0.45, Black);
        }
        for (var y = Math.Ceiling(y0 / step) * step; y <= y1; y += step)
        {
            var py = (int)Math.Round(ToPx(0, y).Y);
            Cv2.Line(image, new Point(plot.Left, py), new Point(plot.Right, py), GridGrey, 1);
            var label = Format(y, step);
            var size = Cv2.GetTextSize(label, Font, 0.45, 1, out _);
            Text(image, label, new Point(plot.Left - size.Width - 8, py + (size.Height / 2)), 0.45, Black);
        }
        Cv2.Rectangle(image, plot, AxisGrey, 1);
        CentredText(image, "gantry X (mm)", new Point(plot.X + (plot.Width / 2), plot.Bottom + 48), 0.55, Black);
        using (var label = new Mat(30, 160, MatType.CV_8UC3, White))
        {
            Text(label, "gantry Y (mm)", new Point(8, 21), 0.55, Black);
            using var turned = new Mat();
            Cv2.Rotate(label, turned, RotateFlags.Rotate90Counterclockwise);
            var at = new Rect(12, plot.Y + (plot.Height / 2) - 80, turned.Cols, turned.Rows);
            using var roi = new Mat(image, at);
            turned.CopyTo(roi);
        }

        // Arrow scale: a round factor so the longest inlier arrow is about a tenth of the plot.
        var inliers = points.Where(p => !p.IsOutlier).ToList();
        var longest = (inliers.Count > 0 ? inliers : points).Max(p => Math.Sqrt((p.ResidualMm.X * p.ResidualMm.X) + (p.ResidualMm.Y * p.ResidualMm.Y)));
        var scale = options.ArrowScale ?? (longest > 0 ? NiceFloor(0.1 * span / longest) : 1.0);

        var levels = points.Select(p => Math.Round(p.ToMm.Z * 2) / 2).Distinct().Order().ToList();
        Scalar LevelColour(double z) => LevelColours[levels.IndexOf(Math.Round(z * 2) / 2) % LevelColours.Length];
        var capPx = 0.25 * plot.Width;
        foreach (var p in points.OrderBy(p => p.IsOutlier))
        {
            var a = ToPx(p.ToMm.X, p.ToMm.Y);
            var dx = p.ResidualMm.X * scale * pxPerMm;
            var dy = -p.ResidualMm.Y * scale * pxPerMm;
            var len = Math.Sqrt((dx * dx) + (dy * dy));
            if (len > capPx)
            {
                dx *= capPx / len;
                dy *= capPx / len;
            }
            var colour = p.IsOutlier ? OutlierRed : LevelColour(p.ToMm.Z);
            var pa = Sub(a);
            var pb = Sub(new Point2d(a.X + dx, a.Y + dy));
            if (len >= 1) Cv2.ArrowedLine(image, pa, pb, colour, 2, LineTypes.AntiAlias, 4, Math.Min(0.35, 10 / Math.Max(len, 1)));
            DrawMarker(image, a, p.Role, p.IsOutlier, colour);
        }

        // Legend.
        var lx = plot.Right + 25;
        var ly = plot.Top + 10;
        Text(image, "Legend", new Point(lx, ly), 0.6, Black, 2);
        ly += 28;
        DrawMarker(image, new Point2d(lx + 8, ly - 5), PointRole.Fit, false, Black);
        Text(image, "fit point", new Point(lx + 26, ly), 0.5, Black);
        ly += 24;
        DrawMarker(image, new Point2d(lx + 8, ly - 5), PointRole.Validation, false, Black);
        Text(image, "validation point (held out)", new Point(lx + 26, ly), 0.5, Black);
        ly += 24;
        DrawMarker(image, new Point2d(lx + 8, ly - 5), PointRole.Fit, true, OutlierRed);
        Text(image, "outlier (not in statistics)", new Point(lx + 26, ly), 0.5, Black);
        ly += 32;
        Text(image, "height level (gantry Z):", new Point(lx, ly), 0.5, Black);
        foreach (var level in levels.Take(8))
        {
            ly += 22;
            Cv2.Circle(image, new Point(lx + 8, ly - 5), 6, LevelColour(level), -1, LineTypes.AntiAlias);
            Text(image, "Z = " + level.ToString("0.0", CultureInfo.InvariantCulture) + " mm", new Point(lx + 26, ly), 0.5, Black);
        }
        ly += 34;
        Text(image, "arrows: residual x " + scale.ToString("0.###", CultureInfo.InvariantCulture), new Point(lx, ly), 0.5, Black, 2);
        ly += 20;
        Text(image, "(mapped camera point - gantry)", new Point(lx, ly), 0.45, Black);
        // Reference arrow of a round residual length.
        var refMm = NiceFloor(0.15 * span / scale);
        var refPx = refMm * scale * pxPerMm;
        ly += 26;
        Cv2.ArrowedLine(image, new Point(lx, ly - 5), new Point(lx + (int)Math.Round(refPx), ly - 5), Black, 2, LineTypes.AntiAlias, 0, Math.Min(0.35, 10 / Math.Max(refPx, 1)));
        Text(image, refMm.ToString("0.####", CultureInfo.InvariantCulture) + " mm", new Point(lx + (int)Math.Round(refPx) + 8, ly), 0.5, Black);
        ly += 34;
        foreach (var note in options.Notes)
        {
            foreach (var line in Wrap(note, 36))
            {
                Text(image, line, new Point(lx, ly), 0.45, Black);
                ly += 20;
            }
        }
        return (Encode(image), scale);
    }

    /// <summary>Writes <see cref="HistogramPng(RigidFitReport, PictureOptions?)"/> to <paramref name="path"/>.</summary>
    public static void WriteHistogramPng(string path, RigidFitReport report, PictureOptions? options = null) => File.WriteAllBytes(path, HistogramPng(report, options));

    /// <summary>Writes <see cref="HistogramPng(IReadOnlyList{double}, double?, double?, IReadOnlyList{double}?, PictureOptions?)"/> to <paramref name="path"/>.</summary>
    public static void WriteHistogramPng(string path, IReadOnlyList<double> residualsMm, double? r63Mm = null, double? r98Mm = null, IReadOnlyList<double>? secondaryMm = null, PictureOptions? options = null) =>
        File.WriteAllBytes(path, HistogramPng(residualsMm, r63Mm, r98Mm, secondaryMm, options));

    /// <summary>Histogram of a fit's validation residuals (blue) stacked on its fit residuals (grey), outliers left out, with the validation r63 and r98.</summary>
    public static byte[] HistogramPng(RigidFitReport report, PictureOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        var validation = report.Points.Where(p => p.Role == PointRole.Validation && !p.IsOutlier).Select(p => p.ErrorMm).ToList();
        var fit = report.Points.Where(p => p.Role == PointRole.Fit && !p.IsOutlier).Select(p => p.ErrorMm).ToList();
        options ??= new PictureOptions();
        options = options with { Title = options.Title ?? "Residuals: validation (blue) on fit (grey)" };
        var outliers = report.OutlierIndices.Count;
        options = options with { Notes = [.. StatsLines("validation", report.Validation), outliers == 0 ? "no outliers" : string.Create(CultureInfo.InvariantCulture, $"{outliers} outlier(s) left out"), .. options.Notes] };
        return HistogramPng(validation, report.Validation.Count > 0 ? report.Validation.R63Mm : null, report.Validation.Count > 0 ? report.Validation.R98Mm : null, fit, options);
    }

    /// <summary>
    /// Histogram of residual lengths (mm; blue), optionally stacked on a second series (grey), with
    /// vertical lines at r63 and r98 when given. Bins of a round width, about 2√n of them (8..40).
    /// </summary>
    public static byte[] HistogramPng(IReadOnlyList<double> residualsMm, double? r63Mm = null, double? r98Mm = null, IReadOnlyList<double>? secondaryMm = null, PictureOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(residualsMm);
        options ??= new PictureOptions();
        secondaryMm ??= [];
        using var image = new Mat(options.HeightPx, options.WidthPx, MatType.CV_8UC3, White);
        var top0 = 62 + (20 * options.Notes.Count);
        var plot = new Rect(85, top0, options.WidthPx - 85 - 40, options.HeightPx - top0 - 75);
        Text(image, options.Title ?? "Residual histogram", new Point(plot.X, 32), 0.7, Black, 2);
        // Notes under the title, outside the plot, so they never cover bars or the radius labels.
        var ny = 56;
        foreach (var note in options.Notes)
        {
            Text(image, note, new Point(plot.X, ny), 0.45, Black);
            ny += 20;
        }
        var all = residualsMm.Concat(secondaryMm).Where(double.IsFinite).ToList();
        if (all.Count == 0)
        {
            Text(image, "no residuals", new Point(plot.X + 20, plot.Y + 40), 0.6, Black);
            return Encode(image);
        }
        var top = Math.Max(all.Max(), Math.Max(r98Mm ?? 0, r63Mm ?? 0)) * 1.08;
        if (!(top > 0)) top = 1e-3;
        var targetBins = Math.Clamp((int)Math.Round(2 * Math.Sqrt(all.Count)), 8, 40);
        var width = NiceStep(top / targetBins);
        var bins = (int)Math.Ceiling(top / width);
        var main = new int[bins];
        var second = new int[bins];
        foreach (var r in residualsMm.Where(double.IsFinite)) main[Math.Clamp((int)(r / width), 0, bins - 1)]++;
        foreach (var r in secondaryMm.Where(double.IsFinite)) second[Math.Clamp((int)(r / width), 0, bins - 1)]++;
        var maxCount = Enumerable.Range(0, bins).Max(i => main[i] + second[i]);
        var countStep = NiceStep(Math.Max(1, maxCount / 6.0));
        countStep = Math.Max(1, Math.Round(countStep));
        var countTop = Math.Ceiling((maxCount + 0.5) / countStep) * countStep;
        var xMax = bins * width;
        int Px(double mm) => (int)Math.Round(plot.Left + (mm / xMax * plot.Width));
        int Py(double count) => (int)Math.Round(plot.Bottom - (count / countTop * plot.Height));

        for (var c = 0.0; c <= countTop + 1e-9; c += countStep)
        {
            Cv2.Line(image, new Point(plot.Left, Py(c)), new Point(plot.Right, Py(c)), GridGrey, 1);
            var label = c.ToString("0", CultureInfo.InvariantCulture);
            var size = Cv2.GetTextSize(label, Font, 0.45, 1, out _);
            Text(image, label, new Point(plot.Left - size.Width - 8, Py(c) + (size.Height / 2)), 0.45, Black);
        }
        var blue = new Scalar(200, 120, 40);
        var grey = new Scalar(175, 175, 175);
        for (var i = 0; i < bins; i++)
        {
            var left = Px(i * width) + 1;
            var right = Px((i + 1) * width) - 1;
            if (second[i] > 0) Cv2.Rectangle(image, new Point(left, Py(second[i])), new Point(right, Py(0)), grey, -1);
            if (main[i] > 0) Cv2.Rectangle(image, new Point(left, Py(second[i] + main[i])), new Point(right, Py(second[i])), blue, -1);
        }
        var tickStep = width * Math.Max(1, Math.Ceiling(bins / 10.0));
        for (var x = 0.0; x <= xMax + 1e-12; x += tickStep)
        {
            Cv2.Line(image, new Point(Px(x), plot.Bottom), new Point(Px(x), plot.Bottom + 5), AxisGrey, 1);
            CentredText(image, Format(x, tickStep), new Point(Px(x), plot.Bottom + 22), 0.45, Black);
        }
        Cv2.Rectangle(image, plot, AxisGrey, 1);
        CentredText(image, options.Unit == "mm" ? "residual (mm)" : "error (" + options.Unit + ")", new Point(plot.X + (plot.Width / 2), plot.Bottom + 52), 0.55, Black);
        Text(image, "count", new Point(12, plot.Y - 12), 0.5, Black);

        var labelY = plot.Top + 22;
        void Marker(double? mm, string name, Scalar colour)
        {
            if (mm is not { } v || !double.IsFinite(v)) return;
            var x = Px(v);
            for (var y = plot.Top; y < plot.Bottom; y += 12) Cv2.Line(image, new Point(x, y), new Point(x, Math.Min(y + 7, plot.Bottom)), colour, 2);
            var text = name + " = " + v.ToString("0.000", CultureInfo.InvariantCulture) + " " + options.Unit;
            var size = Cv2.GetTextSize(text, Font, 0.5, 1, out _);
            var tx = x + 6 + size.Width < plot.Right ? x + 6 : x - 6 - size.Width;
            Text(image, text, new Point(tx, labelY), 0.5, colour, 2);
            labelY += 24;
        }
        Marker(r63Mm, "r63", new Scalar(40, 140, 40));
        Marker(r98Mm, "r98", OutlierRed);
        return Encode(image);
    }

    private static void DrawMarker(Mat image, Point2d at, PointRole role, bool outlier, Scalar colour)
    {
        var c = Sub(at);
        if (outlier)
        {
            const int s = 7 * 16;
            Cv2.Line(image, new Point(c.X - s, c.Y - s), new Point(c.X + s, c.Y + s), colour, 2, LineTypes.AntiAlias, 4);
            Cv2.Line(image, new Point(c.X - s, c.Y + s), new Point(c.X + s, c.Y - s), colour, 2, LineTypes.AntiAlias, 4);
        }
        else if (role == PointRole.Validation)
        {
            const int s = 6 * 16;
            Cv2.Rectangle(image, new Point(c.X - s, c.Y - s), new Point(c.X + s, c.Y + s), colour, 2, LineTypes.AntiAlias, 4);
        }
        else
        {
            Cv2.Circle(image, c, 5 * 16, colour, -1, LineTypes.AntiAlias, 4);
        }
    }

    /// <summary>Fixed-point (4 fractional bits) pixel position for anti-aliased drawing.</summary>
    private static Point Sub(Point2d p) => new((int)Math.Round(p.X * 16), (int)Math.Round(p.Y * 16));

    private static void Text(Mat image, string text, Point at, double size, Scalar colour, int thickness = 1) =>
        Cv2.PutText(image, text, at, Font, size, colour, thickness, LineTypes.AntiAlias);

    private static void CentredText(Mat image, string text, Point centreBaseline, double size, Scalar colour)
    {
        var s = Cv2.GetTextSize(text, Font, size, 1, out _);
        Text(image, text, new Point(centreBaseline.X - (s.Width / 2), centreBaseline.Y), size, colour);
    }

    private static IEnumerable<string> Wrap(string text, int width)
    {
        var line = "";
        foreach (var word in text.Split(' '))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line;
                line = "  " + word;
            }
            else
            {
                line = line.Length == 0 ? word : line + " " + word;
            }
        }
        if (line.Length > 0) yield return line;
    }

    private static string Format(double value, double step)
    {
        var decimals = Math.Clamp((int)Math.Ceiling(-Math.Log10(step) + 1e-9), 0, 6);
        if (Math.Abs(value) < step * 1e-6) value = 0;
        return value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>Smallest of 1, 2, 5 × 10^k at or above <paramref name="raw"/>.</summary>
    private static double NiceStep(double raw)
    {
        if (!(raw > 0) || !double.IsFinite(raw)) return 1;
        var p = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var m = raw / p;
        return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
    }

    /// <summary>Largest of 1, 2, 5 × 10^k at or below <paramref name="raw"/>.</summary>
    private static double NiceFloor(double raw)
    {
        if (!(raw > 0) || !double.IsFinite(raw)) return 1;
        var p = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var m = raw / p;
        return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
    }

    private static byte[] Encode(Mat image)
    {
        if (!Cv2.ImEncode(".png", image, out var png)) throw new InvalidOperationException("PNG encoding failed");
        return png;
    }
}
