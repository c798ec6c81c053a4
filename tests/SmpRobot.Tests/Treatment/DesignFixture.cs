using SmpRobot.Contracts.V1;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Metrics;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.Treatment;

/// <summary>
/// The synthetic head written to a temporary folder and a Norwood IV design on it, sampled once for the
/// tests that read it (sampling takes a couple of seconds).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Maintainability", "CA1515", Justification = "a class fixture of public test classes (xunit needs the test classes public) must be public too")]
public sealed class DesignFixture : IDisposable
{
    public DesignFixture()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("smp-design-").FullName;
        var (mesh, landmarks) = SyntheticHead.Generate();
        Mesh = mesh;
        MeshWriter.WritePly(mesh, Path.Combine(Directory, "head.ply"));
        Head = NorwoodPresets.HeadModel("head.ply", landmarks, "synthetic");
        Design = NorwoodPresets.Create(4, Head, mesh, seed: 7);
        var check = Resolve(Design);
        Assert.True(check.IsValid, string.Join("\n", check.Violations));
        Resolved = check.Design!;
        Dots = DesignPlanner.Generate(Resolved);
        Metrics = DesignMetricsCalculator.Measure(Dots);
        Plans = DesignPlans.Build(Dots, TestProfiles.Sim());
    }

    public string Directory { get; }

    public TriangleMesh Mesh { get; }

    public HeadModel Head { get; }

    public TreatmentDesign Design { get; }

    public ResolvedDesign Resolved { get; }

    public DesignDots Dots { get; }

    public DesignMetrics Metrics { get; }

    public DesignPlanSet Plans { get; }

    /// <summary>Checks a design as if it were a file in the fixture's folder (its mesh paths resolve there).</summary>
    public DesignCheck Resolve(TreatmentDesign design, SmpRobot.Machine.MachineProfile? profile = null) =>
        DesignResolver.Resolve(DesignLoader.Parse(DesignLoader.Format(design), Directory), profile ?? TestProfiles.Sim());

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
