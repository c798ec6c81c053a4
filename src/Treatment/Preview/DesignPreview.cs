using System.Globalization;
using SkiaSharp;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Treatment.Preview;

/// <summary>
/// Pictures of a design's dots as the healed scalp would show them: the head seen from above and from the
/// front (orthographic, shaded skin), every dot drawn at its true size (<see cref="NeedleSpec.DotDiameterMm"/>)
/// and in its pigment's shade, foreshortened where the scalp turns away, softly edged like healed pigment; the
/// hairline, the zones, scars and exclusions outlined; a 10 mm scale bar. PNG via SkiaSharp.
/// </summary>
public static class DesignPreview
{
    /// <summary>Default resolution, pixels per millimetre (a 0.4 mm dot is 3 px across).</summary>
    public const double DefaultPixelsPerMm = 8;

    private enum View { Top, Front }

    /// <summary>
    /// Writes a close-up PNG: the scalp seen along its normal at <paramref name="centerS"/> (frame S), a
    /// <paramref name="widthMm"/> × <paramref name="heightMm"/> window at <paramref name="pixelsPerMm"/>, with the
    /// dots of <paramref name="sessions"/> (all when null) at true size and shade — to judge the pattern by eye.
    /// </summary>
    public static void WriteDetailPng(DesignDots dots, IReadOnlySet<int>? sessions, Vec3 centerS, double widthMm, double heightMm, string title, string path, double pixelsPerMm = 24)
    {
        ArgumentNullException.ThrowIfNull(dots);
        ArgumentNullException.ThrowIfNull(path);
        var design = dots.Design;
        var hit = design.Mesh.ClosestPoint(centerS, 20) ?? throw new ArgumentException("the detail's centre is not on the head", nameof(centerS));
        var normal = design.Mesh.NormalAt(hit);
        // The window's axes on the skin: "up" towards the vertex, "right" across.
        var towardsVertex = design.Map.Up - (normal * Vec3.Dot(design.Map.Up, normal));
        var up = towardsVertex.Length > 1e-6 ? towardsVertex.Normalized() : design.Map.Front;
        var right = Vec3.Cross(up, normal).Normalized();
        const int TitlePx = 50;
        var w = (int)Math.Ceiling(widthMm * pixelsPerMm);
        var h = (int)Math.Ceiling(heightMm * pixelsPerMm);
        using var surface = SKSurface.Create(new SKImageInfo(w, h + TitlePx, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(246, 246, 244));
        using var skin = new SKPaint { Color = new SKColor(224, 192, 168) };
        canvas.DrawRect(0, TitlePx, w, h, skin);
        canvas.Save();
        canvas.ClipRect(new SKRect(0, TitlePx, w, TitlePx + h));
        SKPoint P(Vec3 p)
        {
            var d = p - hit.Point;
            return new SKPoint((float)((Vec3.Dot(d, right) + (widthMm / 2)) * pixelsPerMm), (float)(TitlePx + (((heightMm / 2) - Vec3.Dot(d, up)) * pixelsPerMm)));
        }
        var reach = Math.Sqrt((widthMm * widthMm) + (heightMm * heightMm));
        DrawCurve(canvas, design, design.Hairline?.Line.Points, false, new SKColor(200, 40, 40, 120), 2f, P, normal);
        using var dot = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        var count = 0;
        foreach (var d in dots.Dots)
        {
            if ((sessions is not null && !sessions.Contains(d.Session)) || d.PointMm.DistanceTo(hit.Point) > reach || Vec3.Dot(d.Normal, normal) < 0.5) continue;
            var lightness = design.PigmentLightness.TryGetValue(d.PigmentId, out var l) ? l : 0.3;
            var grey = (byte)Math.Clamp(255 * lightness, 0, 255);
            dot.Color = new SKColor(grey, grey, (byte)Math.Min(255, grey + 6), 235);
            var radius = (float)(d.DotDiameterMm / 2 * pixelsPerMm);
            using var blur = SKMaskFilter.CreateBlur(SKBlurStyle.Normal, radius * 0.25f);
            dot.MaskFilter = blur;
            canvas.DrawCircle(P(d.PointMm), radius, dot);
            dot.MaskFilter = null;
            count++;
        }
        canvas.Restore();
        using var ink = new SKPaint { Color = new SKColor(20, 20, 20), IsAntialias = true, StrokeWidth = 3 };
        using var font = new SKFont(SKTypeface.Default, 22);
        canvas.DrawText(title, 10, 32, font, ink);
        var y0 = TitlePx + h - 20;
        canvas.DrawLine(20, y0, 20 + (float)(5 * pixelsPerMm), y0, ink);
        canvas.DrawText("5 mm", 26 + (float)(5 * pixelsPerMm), y0 + 7, font, ink);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>
    /// Writes a PNG of <paramref name="dots"/> (the dots of <paramref name="sessions"/>, or all when null) to
    /// <paramref name="path"/>: the top view beside the front view, with a title.
    /// </summary>
    public static void WritePng(DesignDots dots, IReadOnlySet<int>? sessions, string title, string path, double pixelsPerMm = DefaultPixelsPerMm)
    {
        ArgumentNullException.ThrowIfNull(dots);
        ArgumentNullException.ThrowIfNull(path);
        using var image = Render(dots, sessions, title, pixelsPerMm);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>Renders the picture (see <see cref="WritePng"/>).</summary>
    public static SKImage Render(DesignDots dots, IReadOnlySet<int>? sessions, string title, double pixelsPerMm = DefaultPixelsPerMm)
    {
        ArgumentNullException.ThrowIfNull(dots);
        var design = dots.Design;
        var map = design.Map;
        var shown = dots.Dots.Where(d => sessions is null || sessions.Contains(d.Session)).ToList();
        var panels = new[] { View.Top, View.Front };
        // The head's extent in each view, with a margin.
        var bounds = panels.Select(v => Bounds(design, v)).ToArray();
        const int MarginPx = 40, TitlePx = 70;
        var widths = bounds.Select(b => (int)Math.Ceiling((b.MaxU - b.MinU) * pixelsPerMm)).ToArray();
        var height = (int)Math.Ceiling(bounds.Max(b => b.MaxV - b.MinV) * pixelsPerMm);
        var info = new SKImageInfo(widths.Sum() + (MarginPx * 3), height + TitlePx + (MarginPx * 2), SKColorType.Rgba8888, SKAlphaType.Premul);
        using var surface = SKSurface.Create(info);
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(246, 246, 244));
        using var font = new SKFont(SKTypeface.Default, 26);
        using var small = new SKFont(SKTypeface.Default, 20);
        using var ink = new SKPaint { Color = new SKColor(30, 30, 30), IsAntialias = true };
        canvas.DrawText(title, MarginPx, 44, font, ink);
        canvas.DrawText(string.Create(CultureInfo.InvariantCulture, $"{shown.Count:N0} dots, each at its true size and shade; view from above (front up) and from the front"), MarginPx, TitlePx - 4, small, ink);
        var x = (float)MarginPx;
        for (var i = 0; i < panels.Length; i++)
        {
            canvas.Save();
            canvas.Translate(x, TitlePx + MarginPx);
            DrawPanel(canvas, design, shown, panels[i], bounds[i], pixelsPerMm, small);
            canvas.Restore();
            x += widths[i] + MarginPx;
        }
        return surface.Snapshot();
    }

    private sealed record ViewBounds(double MinU, double MaxU, double MinV, double MaxV);

    /// <summary>Image coordinates (u right, v down, mm) of a point, and the direction towards the viewer.</summary>
    private static (double U, double V, double Depth) Project(ScalpMap map, View view, Vec3 p)
    {
        var d = p - map.Center;
        var (x, y, z) = (Vec3.Dot(d, map.Right), Vec3.Dot(d, map.Front), Vec3.Dot(d, map.Up));
        return view == View.Top ? (x, -y, z) : (-x, -z, y);
    }

    private static Vec3 Towards(ScalpMap map, View view) => view == View.Top ? map.Up : map.Front;

    private static ViewBounds Bounds(ResolvedDesign design, View view)
    {
        double minU = double.MaxValue, maxU = double.MinValue, minV = double.MaxValue, maxV = double.MinValue;
        // From the front, the scalp and forehead down to below the brows: the model's open edge stays out of the picture.
        var lowest = Vec3.Dot(design.Landmarks.Glabella - design.Map.Center, design.Map.Up) - 25;
        foreach (var p in design.Mesh.Vertices)
        {
            if (view == View.Front && Vec3.Dot(p - design.Map.Center, design.Map.Up) < lowest) continue;
            var (u, v, _) = Project(design.Map, view, p);
            (minU, maxU, minV, maxV) = (Math.Min(minU, u), Math.Max(maxU, u), Math.Min(minV, v), Math.Max(maxV, v));
        }
        const double Margin = 5;
        return new ViewBounds(minU - Margin, maxU + Margin, minV - Margin, maxV + Margin + 12);
    }

    private static void DrawPanel(SKCanvas canvas, ResolvedDesign design, List<DesignDot> dots, View view, ViewBounds b, double scale, SKFont font)
    {
        var map = design.Map;
        var toward = Towards(map, view);
        canvas.ClipRect(new SKRect(0, 0, (float)((b.MaxU - b.MinU) * scale), (float)((b.MaxV - b.MinV) * scale)));
        SKPoint P(Vec3 p)
        {
            var (u, v, _) = Project(map, view, p);
            return new SKPoint((float)((u - b.MinU) * scale), (float)((v - b.MinV) * scale));
        }

        // Skin: every triangle facing the viewer, far ones first, lit from the viewer's side.
        var mesh = design.Mesh;
        var faces = Enumerable.Range(0, mesh.FaceCount)
            .Where(f => Vec3.Dot(mesh.FaceNormal(f), toward) > 0)
            .OrderBy(f =>
            {
                var (a, c, e) = mesh.Corners(f);
                return Project(map, view, (a + c + e) * (1.0 / 3)).Depth;
            })
            .ToList();
        using var skin = new SKPaint { IsAntialias = false, Style = SKPaintStyle.StrokeAndFill, StrokeWidth = 1 };
        foreach (var f in faces)
        {
            var light = Math.Clamp(Vec3.Dot(mesh.FaceNormal(f), toward), 0, 1);
            var shade = 0.55 + (0.45 * light);
            skin.Color = new SKColor((byte)(228 * shade), (byte)(196 * shade), (byte)(172 * shade));
            var (a, c, e) = mesh.Corners(f);
            using var path = new SKPath();
            path.MoveTo(P(a));
            path.LineTo(P(c));
            path.LineTo(P(e));
            path.Close();
            canvas.DrawPath(path, skin);
        }

        // Outlines under the dots.
        DrawCurve(canvas, design, view, design.Hairline?.Line.Points, false, new SKColor(200, 40, 40, 200), 2.5f, P);
        foreach (var zone in design.Zones) DrawCurve(canvas, design, view, zone.Boundary.Polyline.Points, true, new SKColor(40, 90, 200, 150), 1.5f, P);
        foreach (var scar in design.Scars) DrawCurve(canvas, design, view, scar.Outline.Polyline.Points, scar.Outline.Polyline.Closed, new SKColor(230, 130, 20, 200), 2f, P);
        foreach (var exclusion in design.Exclusions) DrawCurve(canvas, design, view, exclusion.Outline.Polyline.Points, true, new SKColor(0, 150, 150, 220), 2f, P);

        // Dots: visible ones, foreshortened by the angle between the skin and the view, softly edged.
        using var dot = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        foreach (var d in dots.OrderBy(d => Project(map, view, d.PointMm).Depth))
        {
            var facing = Vec3.Dot(d.Normal, toward);
            if (facing <= 0.05) continue;
            var lightness = design.PigmentLightness.TryGetValue(d.PigmentId, out var l) ? l : 0.3;
            var grey = (byte)Math.Clamp(255 * lightness, 0, 255);
            dot.Color = new SKColor(grey, grey, (byte)Math.Min(255, grey + 6), 235);
            var radius = (float)(d.DotDiameterMm / 2 * scale);
            using var blur = SKMaskFilter.CreateBlur(SKBlurStyle.Normal, Math.Max(0.3f, radius * 0.25f));
            dot.MaskFilter = blur;
            var center = P(d.PointMm);
            // The dot's circle seen at an angle: shorter across the direction the skin turns away in.
            var n = Project(map, view, map.Center + d.Normal);
            var across = new SKPoint((float)n.U, (float)n.V);
            var angle = (float)(Math.Atan2(across.Y, across.X) * 180 / Math.PI);
            canvas.Save();
            canvas.Translate(center);
            canvas.RotateDegrees(angle);
            canvas.DrawOval(new SKRect(-radius * (float)facing, -radius, radius * (float)facing, radius), dot);
            canvas.Restore();
            dot.MaskFilter = null;
        }

        // Scale bar, 10 mm.
        using var ink = new SKPaint { Color = new SKColor(20, 20, 20), IsAntialias = true, StrokeWidth = 3 };
        var y0 = (float)((b.MaxV - b.MinV - 6) * scale);
        var x0 = (float)(6 * scale);
        canvas.DrawLine(x0, y0, x0 + (float)(10 * scale), y0, ink);
        canvas.DrawLine(x0, y0 - 6, x0, y0 + 6, ink);
        canvas.DrawLine(x0 + (float)(10 * scale), y0 - 6, x0 + (float)(10 * scale), y0 + 6, ink);
        canvas.DrawText("10 mm", x0 + (float)(11 * scale), y0 + 7, font, ink);
        canvas.DrawText(view == View.Top ? "from above (front up)" : "from the front", x0, (float)(4 * scale), font, ink);
    }

    private static void DrawCurve(SKCanvas canvas, ResolvedDesign design, View view, IReadOnlyList<Vec3>? points, bool closed, SKColor color, float width, Func<Vec3, SKPoint> project) =>
        DrawCurve(canvas, design, points, closed, color, width, project, Towards(design.Map, view));

    private static void DrawCurve(SKCanvas canvas, ResolvedDesign design, IReadOnlyList<Vec3>? points, bool closed, SKColor color, float width, Func<Vec3, SKPoint> project, Vec3 toward)
    {
        if (points is null || points.Count < 2) return;
        using var paint = new SKPaint { Color = color, IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = width };
        var count = closed ? points.Count : points.Count - 1;
        for (var i = 0; i < count; i++)
        {
            var a = points[i];
            var c = points[(i + 1) % points.Count];
            // Only where the surface faces the viewer (its outward direction from the head's centre).
            if (Vec3.Dot((a - design.Map.Center).Normalized(), toward) <= 0.05) continue;
            canvas.DrawLine(project(a), project(c), paint);
        }
    }
}
