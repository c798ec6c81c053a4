using System.Collections.Concurrent;
using System.Security.Cryptography;
using SmpRobot.Machine;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Controller.Plans;

/// <summary>A design checked and sampled on the controller: its dots in S and one plan per session.</summary>
/// <param name="Dots">Every dot of every session, in S (design dot id = plan dot id).</param>
/// <param name="Plans">Each session's plan (head frame H, nominal T_HS) and its check.</param>
public sealed record TreatmentDesignPlans(DesignDots Dots, DesignPlanSet Plans)
{
    /// <summary>The design dot of each id.</summary>
    public IReadOnlyDictionary<string, DesignDot> ById { get; } = Dots.Dots.ToDictionary(d => d.Id, StringComparer.Ordinal);
}

/// <summary>
/// Turns a stored design (its text and its head model's bytes) into the plans of its sessions, on the controller, the
/// way <c>smp design plan</c> does offline: a treatment's sessions are made from its design, never from a loose plan
/// file. The same design gives the same dots (the sampler is seeded by the design), so session k made weeks after
/// session 1 is the design's session k. Sampling takes seconds: results are kept per design and head model.
/// Thread-safe.
/// </summary>
public sealed class TreatmentPlanner
{
    private readonly MachineProfile _profile;
    private readonly string _meshDirectory;
    private readonly ConcurrentDictionary<string, Lazy<TreatmentDesignPlans>> _cache = new(StringComparer.Ordinal);

    /// <param name="profile">The machine the plans are for.</param>
    /// <param name="meshDirectory">Where head models are written as files for the design reader (created when needed).</param>
    public TreatmentPlanner(MachineProfile profile, string meshDirectory)
    {
        _profile = profile ?? throw new ArgumentNullException(nameof(profile));
        ArgumentException.ThrowIfNullOrWhiteSpace(meshDirectory);
        _meshDirectory = meshDirectory;
    }

    /// <summary>
    /// Checks <paramref name="designJson"/> with the head model it names given as <paramref name="meshBytes"/> (the file
    /// <paramref name="meshFileName"/>). Returns the resolved design, or the violations (nothing is kept then).
    /// </summary>
    public DesignCheck Check(string designJson, string meshFileName, byte[] meshBytes)
    {
        ArgumentNullException.ThrowIfNull(designJson);
        ArgumentNullException.ThrowIfNull(meshFileName);
        ArgumentNullException.ThrowIfNull(meshBytes);
        var extension = Path.GetExtension(meshFileName).ToLowerInvariant();
        if (extension is not (".ply" or ".obj" or ".stl"))
        {
            return new DesignCheck(null, [new DesignViolation("head", "mesh-format", $"the head model '{meshFileName}' is not a .ply, .obj or .stl file")]);
        }
        var loaded = DesignLoader.Parse(designJson, _meshDirectory);
        if (loaded.Design is null) return new DesignCheck(null, loaded.Violations);
        // The design names its mesh by the practitioner's path; the controller has the bytes. Resolve against a file of
        // those bytes, named by their hash (the same model is written once), and keep the design's text as given.
        var design = loaded.Design.Clone();
        design.Head ??= new Contracts.V1.HeadModel();
        design.Head.Mesh = MeshFile(meshFileName, meshBytes);
        return DesignResolver.Resolve(loaded with { Design = design }, _profile);
    }

    /// <summary>
    /// The dots and plans of a design (sampled once per design text and head model; later calls reuse them). Throws
    /// <see cref="InvalidDataException"/> when the stored design no longer checks (another profile, a changed rule).
    /// </summary>
    public TreatmentDesignPlans Plans(string designJson, string meshFileName, byte[] meshBytes)
    {
        ArgumentNullException.ThrowIfNull(designJson);
        ArgumentNullException.ThrowIfNull(meshBytes);
        var key = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(designJson))) + ":" + Convert.ToHexStringLower(SHA256.HashData(meshBytes));
        var lazy = _cache.GetOrAdd(key, _ => new Lazy<TreatmentDesignPlans>(() =>
        {
            var check = Check(designJson, meshFileName, meshBytes);
            if (check.Design is null)
            {
                throw new InvalidDataException("the treatment's design does not check on this controller: " + string.Join("; ", check.Violations.Take(5).Select(v => v.ToString())));
            }
            var dots = DesignPlanner.Generate(check.Design);
            return new TreatmentDesignPlans(dots, DesignPlans.Build(dots, _profile));
        }, LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _cache.TryRemove(key, out _);
            throw;
        }
    }

    /// <summary>
    /// The plan of touch-up <paramref name="number"/>: one dot for each recorded dot of <paramref name="restore"/> (a design dot
    /// id and where its dot is on the skin, frame S: the camera's measured point when it checked it), placed where that dot
    /// is, with the design's depth, dwell, pigment, needle, normal and head position. Every recorded dot is a candidate: at
    /// each head position the camera then finds those still there, and only the faded or missing ones are placed
    /// (<see cref="Sessions.EarlierDotMatch"/>). Dot ids are "u{number}-{design dot id}".
    /// </summary>
    public SessionPlan TouchUpPlan(TreatmentDesignPlans plans, IReadOnlyList<(string DesignDotId, Geometry.Vec3 PointS)> restore, int number)
    {
        ArgumentNullException.ThrowIfNull(plans);
        ArgumentNullException.ThrowIfNull(restore);
        ArgumentOutOfRangeException.ThrowIfLessThan(number, 2);
        var byId = new Dictionary<string, Contracts.V1.Dot>(StringComparer.Ordinal);
        var patchByNumber = new Dictionary<uint, Contracts.V1.PlanPatch>();
        foreach (var session in plans.Plans.Sessions)
        {
            foreach (var dot in session.Plan.Dots) byId[dot.Id] = dot;
            foreach (var patch in session.Plan.Patches) patchByNumber[patch.Number] = patch;
        }
        var first = plans.Plans.Sessions[0].Plan;
        var design = plans.Dots.Design;
        var plan = new Contracts.V1.Plan
        {
            Name = Shorten(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{design.Source.Name}: touch-up {number}"), PlanValidator.MaxNameLength),
            Units = "mm",
            Source = first.Source.Clone(),
        };
        plan.Source.Session = (uint)number;
        var headFromScalp = plans.Plans.HeadFromScalp;
        var used = new SortedSet<uint>();
        foreach (var (designDotId, pointS) in restore)
        {
            // A design dot no head position reaches was never placed; one without a plan dot cannot be restored here.
            if (!byId.TryGetValue(designDotId, out var planned)) continue;
            var p = headFromScalp.Apply(pointS);
            var dot = planned.Clone();
            dot.Id = "u" + number.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-" + designDotId;
            dot.XMm = Math.Round(p.X, 3);
            dot.YMm = Math.Round(p.Y, 3);
            dot.ZMm = Math.Round(p.Z, 3);
            dot.Session = (uint)number;
            plan.Dots.Add(dot);
            used.Add(dot.Patch);
        }
        foreach (var n in used)
        {
            if (patchByNumber.TryGetValue(n, out var patch)) plan.Patches.Add(patch.Clone());
        }
        return new SessionPlan(number, plan, new PlanValidator(_profile).Validate(plan));
    }

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";

    private string MeshFile(string meshFileName, byte[] bytes)
    {
        Directory.CreateDirectory(_meshDirectory);
        var extension = Path.GetExtension(meshFileName).ToLowerInvariant();
        var path = Path.Combine(_meshDirectory, Convert.ToHexStringLower(SHA256.HashData(bytes)) + extension);
        if (!File.Exists(path))
        {
            // Written beside and moved: a reader never sees half a mesh.
            var temporary = path + "." + RandomNumberGenerator.GetHexString(8, lowercase: true) + ".tmp";
            File.WriteAllBytes(temporary, bytes);
            File.Move(temporary, path, overwrite: true);
        }
        return path;
    }
}
