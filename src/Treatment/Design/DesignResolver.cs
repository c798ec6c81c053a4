using System.Globalization;
using NetTopologySuite.Geometries;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Sampling;
using SmpRobot.Treatment.Surface;
using Position = SmpRobot.Contracts.V1.Position;

namespace SmpRobot.Treatment.Design;

/// <summary>A design checked against a machine profile: the resolved design when nothing is wrong, and every violation.</summary>
public sealed record DesignCheck(ResolvedDesign? Design, IReadOnlyList<DesignViolation> Violations)
{
    public bool IsValid => Design is not null && Violations.Count == 0;
}

/// <summary>
/// Checks a treatment design and brings it onto its head mesh. Every rule is checked and every violation
/// named (rule names are stable, as plan rules are); nothing is sampled from a design with a violation.
/// Rules: units, name, seed; sessions (count 2–4, shares summing to 1 with the first the smallest, days
/// 10–30); pigments (known to the machine, each with a lightness, the first session the lightest); the
/// head (mesh readable, a manifold, outward, head-sized surface without holes where dots go; landmarks on
/// it); curves (on the mesh, closed ones simple); zones (density 10–150 dots/cm², needle, depth and dwell
/// inside the machine's limits, a minimum spacing the density leaves room for, no overlaps); scars,
/// exclusions and the hairline (band 5–15 mm, irregularity in range, the frontal line in front of the vertex).
/// </summary>
public static class DesignResolver
{
    /// <summary>Zone and scar densities a design may ask for, dots/cm² (real scalps carry 65–110 follicular units/cm²; half already looks like hair).</summary>
    public const double MinDensityPerCm2 = 10, MaxDensityPerCm2 = 150;

    /// <summary>Overlap of two zones on the scalp map tolerated as their shared border, map mm².</summary>
    public const double MaxOverlapMapMm2 = 20;

    /// <summary>A minimum spacing above this share of the hexagonal spacing leaves no room for an irregular pattern.</summary>
    public const double MaxMinSpacingShare = 0.85;

    /// <summary>Checks <paramref name="loaded"/> against <paramref name="profile"/> and resolves it.</summary>
    public static DesignCheck Resolve(LoadedDesign loaded, MachineProfile profile)
    {
        ArgumentNullException.ThrowIfNull(loaded);
        ArgumentNullException.ThrowIfNull(profile);
        if (loaded.Design is null) return new DesignCheck(null, loaded.Violations);
        var d = loaded.Design;
        var v = new List<DesignViolation>();
        var inv = CultureInfo.InvariantCulture;

        if (d.Units != "mm") v.Add(new("design", "units", $"units are \"{d.Units}\"; designs are in \"mm\""));
        if (string.IsNullOrWhiteSpace(d.Name) || d.Name.Length > 200) v.Add(new("design", "name", "the design needs a name of 1-200 characters"));

        // Sessions.
        var shares = d.Sessions?.Shares.ToList() ?? [];
        if (shares.Count is < 2 or > 4)
        {
            v.Add(new("sessions", "session-count", string.Create(inv, $"{shares.Count} session(s); a treatment has 2-4 sessions (give one share per session)")));
        }
        else if (shares.Any(s => !(s > 0 && s < 1)))
        {
            v.Add(new("sessions", "session-shares", "every session's share must be between 0 and 1"));
        }
        else
        {
            var sum = shares.Sum();
            if (Math.Abs(sum - 1) > 0.001) v.Add(new("sessions", "session-shares", string.Create(inv, $"the shares add up to {sum:0.###}; they must add up to 1 (the final density)")));
            for (var k = 1; k < shares.Count; k++)
            {
                if (shares[0] > shares[k] + 1e-9)
                {
                    v.Add(new("sessions", "session-order", string.Create(inv, $"session 1 adds {shares[0]:P0} but session {k + 1} only {shares[k]:P0}: the first session is the sparsest; later ones fill between")));
                    break;
                }
            }
        }
        var days = d.Sessions?.DaysAfterPrevious.ToList() ?? [];
        if (days.Count > 0 && (days.Count != Math.Max(0, shares.Count - 1) || days.Any(x => x is < 10 or > 30)))
        {
            v.Add(new("sessions", "session-days", "give the days between sessions once per session after the first, each 10-30"));
        }
        var sessionCount = shares.Count is >= 2 and <= 4 ? shares.Count : 0;

        // Pigments.
        var lightness = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var p in d.Pigments)
        {
            if (!profile.Pigments.Contains(p.Id)) v.Add(new("pigments", "pigment-unknown", $"pigment \"{p.Id}\" is not loaded on machine {profile.Name} (loaded: {string.Join(", ", profile.Pigments)})"));
            if (!(p.Lightness >= 0 && p.Lightness <= 1)) v.Add(new("pigments", "pigment-shade", $"pigment \"{p.Id}\": lightness must be 0 (black) to 1 (white)"));
            if (!lightness.TryAdd(p.Id, p.Lightness)) v.Add(new("pigments", "pigment-shade", $"pigment \"{p.Id}\" is listed twice"));
        }

        // Head.
        var head = ResolveHead(d.Head, loaded.Directory, v);
        if (head is null) return new DesignCheck(null, v);
        var (mesh, landmarks, meshPath) = head.Value;
        var map = new ScalpMap(mesh, landmarks);
        var curves = new CurveResolver(mesh, map);

        // Zones and scars.
        var names = new HashSet<string>(StringComparer.Ordinal);
        var zones = new List<ResolvedZone>();
        foreach (var z in d.Zones)
        {
            var where = "zone " + (string.IsNullOrEmpty(z.Name) ? "(unnamed)" : z.Name);
            CheckName(z.Name, where, names, v);
            var settings = Settings(z.Name, false, z.DensityPerCm2, z.Needle, z.DepthMm, z.DwellMs, z.PigmentPerSession, z.MinSpacingMm, null, where, sessionCount, lightness, profile, v);
            var boundary = curves.Resolve(z.Boundary, closed: true, where, v);
            if (settings is not null && boundary is not null) zones.Add(new ResolvedZone(settings, boundary));
        }
        var scars = new List<ResolvedScar>();
        foreach (var s in d.Scars)
        {
            var where = "scar " + (string.IsNullOrEmpty(s.Name) ? "(unnamed)" : s.Name);
            CheckName(s.Name, where, names, v);
            if (s.Kind == ScarKind.Unspecified) v.Add(new(where, "scar-kind", "give the scar's kind: strip, fue or other"));
            if (!s.Closed && !(s.WidthMm >= 1 && s.WidthMm <= 30)) v.Add(new(where, "scar-width", string.Create(inv, $"a scar drawn as a line needs its width, 1-30 mm (got {s.WidthMm:0.##})")));
            var settings = Settings(s.Name, true, s.DensityPerCm2, s.Needle, s.DepthMm, s.DwellMs, s.PigmentPerSession, 0, string.IsNullOrEmpty(s.FirstPassPigment) ? null : s.FirstPassPigment, where, sessionCount, lightness, profile, v);
            var outline = curves.Resolve(s.Outline, s.Closed, where, v);
            if (settings is not null && outline is not null) scars.Add(new ResolvedScar(settings, s.Kind, outline, s.Closed ? 0 : s.WidthMm / 2));
        }
        if (d.Zones.Count == 0 && d.Scars.Count == 0) v.Add(new("design", "no-zones", "the design has no zone and no scar: nothing to place"));

        var exclusions = new List<ResolvedExclusion>();
        foreach (var e in d.Exclusions)
        {
            var where = "exclusion " + (string.IsNullOrEmpty(e.Name) ? "(unnamed)" : e.Name);
            if (!(e.MarginMm >= 0 && e.MarginMm <= 20)) v.Add(new(where, "exclusion-margin", "the margin must be 0-20 mm"));
            if (curves.Resolve(e.Outline, closed: true, where, v) is { } outline) exclusions.Add(new ResolvedExclusion(e.Name, outline, Math.Clamp(e.MarginMm, 0, 20)));
        }

        // Zones must not overlap: a dot belongs to one zone.
        for (var i = 0; i < zones.Count; i++)
        {
            for (var j = i + 1; j < zones.Count; j++)
            {
                // Zones drawn edge to edge share their border; once on the mesh it wavers by hundredths of a
                // millimetre, so a sliver along it is no overlap.
                var overlap = zones[i].Boundary.MapOutline!.Intersection(zones[j].Boundary.MapOutline!).Area;
                if (overlap > MaxOverlapMapMm2)
                {
                    v.Add(new("zone " + zones[j].Settings.Name, "zone-overlap", string.Create(inv, $"overlaps zone {zones[i].Settings.Name} by about {overlap / 100:0.00} cm² of the scalp map: zones must not overlap (a dot belongs to one zone)")));
                }
            }
        }

        ResolvedHairline? hairline = null;
        if (d.Hairline is { } h)
        {
            hairline = ResolveHairline(h, curves, map, mesh, landmarks, d.Seed, profile, v);
        }

        // The mesh itself, where dots go.
        bool Treated(Vec3 p)
        {
            var m = map.ToMap(p);
            return zones.Any(z => z.Contains(m)) || scars.Any(s => s.Contains(p, m));
        }
        foreach (var problem in MeshCheck.Check(mesh, landmarks.Center, Treated))
        {
            v.Add(new("head", problem.Rule, problem.Message));
        }

        if (v.Count > 0) return new DesignCheck(null, v);
        var regions = zones.Select(z => z.Settings).Concat(scars.Select(s => s.Settings)).ToList();
        var design = new ResolvedDesign
        {
            Source = d,
            SourceSha256 = loaded.Sha256,
            Mesh = mesh,
            MeshPath = meshPath,
            MeshSha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(meshPath))),
            Landmarks = landmarks,
            Map = map,
            Regions = regions,
            Zones = zones,
            Scars = scars,
            Exclusions = exclusions,
            Hairline = hairline,
            SessionShares = shares,
            PigmentLightness = lightness,
        };

        // The machine's limits on counts: every session must fit in one plan.
        var field = new DensityField(design);
        var expected = field.ExpectedDotsPerRegion();
        var total = expected.Sum();
        for (var k = 0; k < shares.Count; k++)
        {
            var session = total * shares[k];
            if (session > profile.MaxDots)
            {
                v.Add(new("sessions", "max-dots", string.Create(inv, $"session {k + 1} would place about {session:0} dots; machine {profile.Name} takes at most {profile.MaxDots} in one plan")));
            }
        }
        for (var r = 0; r < regions.Count; r++)
        {
            if (expected[r] < 1) v.Add(new((regions[r].IsScar ? "scar " : "zone ") + regions[r].Name, "region-empty", "no dot falls in it: is it in front of the hairline, inside an exclusion, or covered by another zone?"));
        }
        return v.Count > 0 ? new DesignCheck(null, v) : new DesignCheck(design, []);
    }

    private static (TriangleMesh, HeadLandmarks, string)? ResolveHead(HeadModel? head, string directory, List<DesignViolation> v)
    {
        if (head is null || string.IsNullOrWhiteSpace(head.Mesh))
        {
            v.Add(new("head", "mesh-missing", "the design names no head mesh (head.mesh: a .ply, .obj or .stl file, mm, frame S)"));
            return null;
        }
        var path = Path.IsPathRooted(head.Mesh) ? head.Mesh : Path.GetFullPath(Path.Combine(directory, head.Mesh));
        TriangleMesh mesh;
        try
        {
            mesh = MeshReader.Read(path);
        }
        catch (FileNotFoundException)
        {
            v.Add(new("head", "mesh-missing", $"the head mesh {path} does not exist"));
            return null;
        }
        catch (Exception e) when (e is MeshFormatException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            v.Add(new("head", "mesh-format", e.Message));
            return null;
        }
        var missing = new List<string>();
        Vec3 Landmark(Position? p, string name)
        {
            if (p is null || !(double.IsFinite(p.XMm) && double.IsFinite(p.YMm) && double.IsFinite(p.ZMm)))
            {
                missing.Add(name);
                return Vec3.Zero;
            }
            return new Vec3(p.XMm, p.YMm, p.ZMm);
        }
        var landmarks = new HeadLandmarks(
            Landmark(head.Center, "center"), Landmark(head.Vertex, "vertex"), Landmark(head.Glabella, "glabella"),
            Landmark(head.ForeheadCrease, "foreheadCrease"), Landmark(head.Crown, "crown"), Landmark(head.LeftTragus, "leftTragus"), Landmark(head.RightTragus, "rightTragus"));
        if (head.Center is null || head.Vertex is null || head.Glabella is null)
        {
            v.Add(new("head", "landmark-missing", "the head needs its center, vertex and glabella landmarks (mm, frame S)"));
            return null;
        }
        if (missing.Count > 0) v.Add(new("head", "landmark-missing", "not finite: " + string.Join(", ", missing)));
        foreach (var (point, name) in new[] { (landmarks.Vertex, "vertex"), (landmarks.Glabella, "glabella") })
        {
            if (mesh.ClosestPoint(point, CurveResolver.MaxOffMeshMm) is null) v.Add(new("head", "landmark-off-mesh", $"the {name} {point} is more than {CurveResolver.MaxOffMeshMm:0} mm from the mesh"));
        }
        if ((landmarks.Vertex - landmarks.Center).Length < 40 || Vec3.Dot((landmarks.Vertex - landmarks.Center).Normalized(), (landmarks.Glabella - landmarks.Center).Normalized()) > 0.8)
        {
            v.Add(new("head", "landmark-center", "the center must lie well inside the head, below the vertex and behind the glabella"));
        }
        return (mesh, landmarks, path);
    }

    private static void CheckName(string name, string where, HashSet<string> names, List<DesignViolation> v)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || name.Any(c => c <= ' ' || c > '~'))
        {
            v.Add(new(where, "name", "a zone or scar needs a name of 1-64 printable characters without spaces"));
        }
        else if (!names.Add(name))
        {
            v.Add(new(where, "name", $"the name \"{name}\" is used twice"));
        }
    }

    private static NeedleSpec? Needle(Contracts.V1.Needle? needle, string where, List<DesignViolation> v)
    {
        if (needle is null || needle.Configuration is not ("1RL" or "3RL") || !(needle.DiameterMm >= NeedleSpec.MinDiameterMm - 1e-9 && needle.DiameterMm <= NeedleSpec.MaxDiameterMm + 1e-9))
        {
            v.Add(new(where, "needle", string.Create(CultureInfo.InvariantCulture,
                $"the needle must be 1RL or 3RL of {NeedleSpec.MinDiameterMm:0.00}-{NeedleSpec.MaxDiameterMm:0.00} mm (got {needle?.Configuration ?? "none"} {needle?.DiameterMm ?? 0:0.00} mm)")));
            return null;
        }
        return new NeedleSpec(needle.Configuration, needle.DiameterMm);
    }

    private static bool DepthAndDwell(double depthMm, double dwellMs, string where, MachineProfile profile, List<DesignViolation> v)
    {
        var inv = CultureInfo.InvariantCulture;
        var ok = true;
        var needle = profile.Needle;
        if (!(depthMm >= needle.MinDepthMm && depthMm <= needle.MaxDepthMm))
        {
            v.Add(new(where, "depth-range", string.Create(inv, $"depth {depthMm:0.00} mm is outside the needle limits {needle.MinDepthMm:0.00}-{needle.MaxDepthMm:0.00} mm of machine {profile.Name}")));
            ok = false;
        }
        var low = dwellMs * (1 - DotSettings.DwellJitter);
        var high = dwellMs * (1 + DotSettings.DwellJitter);
        if (!(low >= needle.MinDwellMs && high <= needle.MaxDwellMs))
        {
            v.Add(new(where, "dwell-range", string.Create(inv,
                $"dwell {dwellMs:0.#} ms (each dot {low:0}-{high:0} ms: ±{DotSettings.DwellJitter:P0} for natural dot sizes) is outside the limits {needle.MinDwellMs:0.#}-{needle.MaxDwellMs:0.#} ms of machine {profile.Name}")));
            ok = false;
        }
        return ok;
    }

    private static RegionSettings? Settings(string name, bool isScar, double densityPerCm2, Contracts.V1.Needle? needle, double depthMm, double dwellMs,
        Google.Protobuf.Collections.RepeatedField<string> pigments, double minSpacingMm, string? firstPass, string where, int sessions, Dictionary<string, double> lightness, MachineProfile profile, List<DesignViolation> v)
    {
        var inv = CultureInfo.InvariantCulture;
        var before = v.Count;
        if (!(densityPerCm2 >= MinDensityPerCm2 && densityPerCm2 <= MaxDensityPerCm2))
        {
            v.Add(new(where, "density", string.Create(inv, $"density {densityPerCm2:0.#} dots/cm² is outside {MinDensityPerCm2:0}-{MaxDensityPerCm2:0} (real scalps carry 65-110 follicular units/cm²; half already looks like hair)")));
        }
        var spec = Needle(needle, where, v);
        DepthAndDwell(depthMm, dwellMs, where, profile, v);
        if (sessions > 0 && pigments.Count != sessions)
        {
            v.Add(new(where, "pigments-per-session", string.Create(inv, $"{pigments.Count} pigment(s) for {sessions} sessions: give one pigment per session")));
        }
        foreach (var p in pigments.Concat(firstPass is null ? [] : [firstPass]).Distinct(StringComparer.Ordinal))
        {
            if (!profile.Pigments.Contains(p)) v.Add(new(where, "pigment-unknown", $"pigment \"{p}\" is not loaded on machine {profile.Name} (loaded: {string.Join(", ", profile.Pigments)})"));
            else if (!lightness.ContainsKey(p)) v.Add(new(where, "pigment-shade", $"pigment \"{p}\" has no lightness in the design's pigments list"));
        }
        if (pigments.All(lightness.ContainsKey))
        {
            for (var k = 1; k < pigments.Count; k++)
            {
                if (lightness[pigments[k]] > lightness[pigments[0]] + 1e-9)
                {
                    v.Add(new(where, "shade-order", $"session {k + 1}'s pigment {pigments[k]} is lighter than session 1's {pigments[0]}: the first session is the lightest"));
                    break;
                }
            }
            if (firstPass is not null && pigments.Count > 0 && lightness.TryGetValue(firstPass, out var first) && first < lightness[pigments[0]] - 1e-9)
            {
                v.Add(new(where, "shade-order", $"the first-pass pigment {firstPass} is darker than session 1's {pigments[0]}: a scar's first pass is lighter"));
            }
        }
        var density = densityPerCm2 / 100;
        var hex = density > 0 ? DotSettings.HexSpacingMm(density) : 0;
        var spacing = minSpacingMm > 0 ? minSpacingMm : Math.Max(DotSettings.DefaultMinSpacingShare * hex, profile.MinDotSpacingMm);
        if (minSpacingMm < 0 || (minSpacingMm > 0 && minSpacingMm < profile.MinDotSpacingMm))
        {
            v.Add(new(where, "min-spacing", string.Create(inv, $"minimum spacing {minSpacingMm:0.00} mm is below machine {profile.Name}'s {profile.MinDotSpacingMm:0.00} mm")));
        }
        else if (density > 0 && spacing > MaxMinSpacingShare * hex)
        {
            v.Add(new(where, "min-spacing", string.Create(inv,
                $"at {densityPerCm2:0.#} dots/cm² neighbours are {hex:0.00} mm apart on a hexagonal grid; a minimum spacing of {spacing:0.00} mm (machine {profile.Name}: {profile.MinDotSpacingMm:0.00} mm) leaves no room for an irregular pattern (at most {MaxMinSpacingShare * hex:0.00} mm): lower the density")));
        }
        if (v.Count > before || spec is null) return null;
        return new RegionSettings(name, isScar, density, spec, depthMm, dwellMs, [.. pigments], spacing, firstPass);
    }

    private static ResolvedHairline? ResolveHairline(Hairline h, CurveResolver curves, ScalpMap map, TriangleMesh mesh, HeadLandmarks landmarks, uint seed, MachineProfile profile, List<DesignViolation> v)
    {
        const string Where = "hairline";
        var inv = CultureInfo.InvariantCulture;
        var before = v.Count;
        if (!(h.BandWidthMm >= 5 && h.BandWidthMm <= 15)) v.Add(new(Where, "hairline-band", string.Create(inv, $"the transition band is {h.BandWidthMm:0.#} mm; natural hairlines soften over 5-15 mm")));
        if (!(h.MacroWavinessMm >= 0 && h.MacroWavinessMm <= 5) || !(h.MacroWavelengthMm >= 10 && h.MacroWavelengthMm <= 60)
            || !(h.MicroScatterMm >= 0 && h.MicroScatterMm <= 3) || !(h.Asymmetry >= 0 && h.Asymmetry <= 1) || !(h.LeadingDensityFraction >= 0.05 && h.LeadingDensityFraction <= 0.5))
        {
            v.Add(new(Where, "hairline-irregularity", "waviness 0-5 mm at a wavelength of 10-60 mm, scatter 0-3 mm, asymmetry 0-1 and a leading density of 0.05-0.5 of the zone's"));
        }
        var needle = Needle(h.Needle, Where, v);
        DepthAndDwell(h.DepthMm, h.DwellMs, Where, profile, v);
        var drawn = curves.Resolve(h.Curve, closed: false, Where, v);
        if (drawn is null || needle is null || v.Count > before) return null;

        // From the person's left to their right, whichever way it was drawn.
        var points = drawn.Polyline.Points.ToList();
        if (Vec3.Dot(points[0] - points[^1], map.Right) > 0) points.Reverse();
        var line = Irregular(points, h, map, mesh, (int)seed);
        var behind = BehindOnMap(line, map);
        if (behind is null || !behind.Contains(CurveResolver.Geometry.CreatePoint(new Coordinate(0, 0))))
        {
            v.Add(new(Where, "hairline-shape", "the hairline must run across the front, from one temple to the other, in front of the vertex, without crossing itself"));
            return null;
        }
        return new ResolvedHairline(new SurfacePolyline(points, false), line, behind, h, needle);
    }

    /// <summary>
    /// The drawn line with its macro waviness: each point moves along the surface, across the line, by a
    /// smooth noise of the distance from the midline. The right half's noise is the left half's mirrored,
    /// blended towards an independent one by <c>asymmetry</c> (from the midline outwards, so the line stays continuous).
    /// </summary>
    private static SurfacePolyline Irregular(List<Vec3> points, Hairline h, ScalpMap map, TriangleMesh mesh, int seed)
    {
        // Arc length from the point nearest the midline (negative to the left).
        var middle = 0;
        for (var i = 1; i < points.Count; i++)
        {
            if (Math.Abs(Vec3.Dot(points[i] - map.Center, map.Right)) < Math.Abs(Vec3.Dot(points[middle] - map.Center, map.Right))) middle = i;
        }
        var arc = new double[points.Count];
        for (var i = middle + 1; i < points.Count; i++) arc[i] = arc[i - 1] + points[i].DistanceTo(points[i - 1]);
        for (var i = middle - 1; i >= 0; i--) arc[i] = arc[i + 1] - points[i].DistanceTo(points[i + 1]);
        var shared = new SmoothNoise(seed ^ 0x5a17);
        var own = new SmoothNoise(seed ^ 0x3c6e);
        var moved = new List<Vec3>(points.Count);
        for (var i = 0; i < points.Count; i++)
        {
            var s = Math.Abs(arc[i]);
            var mirrored = shared.At(s, h.MacroWavelengthMm);
            var blend = arc[i] > 0 ? h.Asymmetry * Math.Min(1, s / (h.MacroWavelengthMm / 2)) : 0;
            var offset = h.MacroWavinessMm * (((1 - blend) * mirrored) + (blend * own.At(s, h.MacroWavelengthMm)));
            var tangent = points[Math.Min(i + 1, points.Count - 1)] - points[Math.Max(i - 1, 0)];
            var normal = mesh.ClosestPoint(points[i], 1) is { } onMesh ? mesh.NormalAt(onMesh) : (points[i] - map.Center).Normalized();
            var across = Vec3.Cross(normal, tangent).Normalized();
            // Positive offsets go back, towards the vertex.
            if (Vec3.Dot(across, map.Up) < 0) across = -across;
            var target = points[i] + (across * offset);
            moved.Add(mesh.ClosestPoint(target, Math.Abs(offset) + 2)?.Point ?? target);
        }
        // Queried out to the band's far edge plus the scatter: one grid cell of that size keeps queries to 27 cells.
        return new SurfacePolyline(moved, false, cellMm: h.BandWidthMm + (3 * h.MicroScatterMm) + 1);
    }

    /// <summary>The map region behind the line: the line, then out from its ends and around the back of the head.</summary>
    private static Polygon? BehindOnMap(SurfacePolyline line, ScalpMap map)
    {
        var ring = line.Points.Select(map.ToMap).Select(m => new Coordinate(m.X, m.Y)).ToList();
        var outer = Math.PI * ScalpMap.ReferenceRadiusMm * 0.97;
        var right = ring[^1];
        var left = ring[0];
        var rightAzimuth = Math.Atan2(right.X, right.Y);
        var leftAzimuth = Math.Atan2(left.X, left.Y);
        // From the right end's azimuth on round the back (increasing azimuth) to the left end's.
        if (leftAzimuth <= rightAzimuth) leftAzimuth += 2 * Math.PI;
        const int Steps = 90;
        for (var k = 0; k <= Steps; k++)
        {
            var azimuth = rightAzimuth + ((leftAzimuth - rightAzimuth) * k / Steps);
            ring.Add(new Coordinate(outer * Math.Sin(azimuth), outer * Math.Cos(azimuth)));
        }
        ring.Add(ring[0]);
        var polygon = CurveResolver.Geometry.CreatePolygon(ring.ToArray());
        return polygon.IsValid ? polygon : null;
    }
}
