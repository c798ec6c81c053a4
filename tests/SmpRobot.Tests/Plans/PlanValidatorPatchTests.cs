using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.Plans;

/// <summary>The rules of plans made from designs: head positions, skin normals and the needle's tilt, spacing on the skin.</summary>
public class PlanValidatorPatchTests
{
    private static readonly MachineProfile Profile = TestProfiles.Sim();

    private static Dot Dot(string id, double x, double y, double z, Vec3? normal = null, uint patch = 0) => new()
    {
        Id = id, XMm = x, YMm = y, ZMm = z, DepthMm = 1, DwellMs = 200, PigmentId = "charcoal-1",
        NormalX = normal?.X ?? 0, NormalY = normal?.Y ?? 0, NormalZ = normal?.Z ?? 0, Patch = patch,
    };

    private static PlanValidationResult Check(Plan plan) => new PlanValidator(Profile).Validate(plan);

    [Theory]
    [InlineData("head-model.ply", "", "both its file")]
    [InlineData("", "19eda8b1be267357bb7b14520345d4e6d8f0ef7bb3647bdd7d7bf2ce80ea1c7a", "both its file")]
    [InlineData("head-model.png", "19eda8b1be267357bb7b14520345d4e6d8f0ef7bb3647bdd7d7bf2ce80ea1c7a", ".ply, .obj or .stl")]
    [InlineData("/etc/head.ply", "19eda8b1be267357bb7b14520345d4e6d8f0ef7bb3647bdd7d7bf2ce80ea1c7a", "relative path")]
    [InlineData("head-model.ply", "19EDA8B1", "64 lower-case hex")]
    public void A_plan_names_its_head_model_by_a_relative_mesh_file_and_its_sha256_or_not_at_all(string file, string sha, string message)
    {
        var plan = new Plan { Name = "p", Units = "mm", Source = new PlanSource { HeadModelFile = file, HeadModelSha256 = sha } };
        plan.Dots.Add(Dot("a", 0, 0, 0));
        Assert.Contains(Check(plan).Violations, v => v.Rule == "head-model" && v.Message.Contains(message, StringComparison.Ordinal));

        plan.Source = new PlanSource { HeadModelFile = "head-model.ply", HeadModelSha256 = "19eda8b1be267357bb7b14520345d4e6d8f0ef7bb3647bdd7d7bf2ce80ea1c7a" };
        Assert.DoesNotContain(Check(plan).Violations, v => v.Rule == "head-model");
    }

    [Fact]
    public void A_dot_in_an_unknown_head_position_or_with_a_broken_normal_is_named()
    {
        var plan = new Plan { Name = "p", Units = "mm" };
        plan.Patches.Add(new PlanPatch { Number = 1, Instruction = "upright", HeadPose = DesignPlans.ToMessage(RigidTransform.Identity) });
        plan.Dots.Add(Dot("a", 0, 0, 0, new Vec3(0, 0, 1), 1));
        plan.Dots.Add(Dot("b", 5, 0, 0, new Vec3(0, 0, 1), 3));
        plan.Dots.Add(Dot("c", 10, 0, 0, new Vec3(0, 0, 2), 1));
        var result = Check(plan);
        Assert.Contains(result.Violations, v => v.DotId == "b" && v.Rule == "patch-unknown" && v.Message.Contains("patch 3", StringComparison.Ordinal));
        Assert.Contains(result.Violations, v => v.DotId == "c" && v.Rule == "normal");
        Assert.DoesNotContain(result.Violations, v => v.DotId == "a");

        plan.Patches.Add(new PlanPatch { Number = 1, HeadPose = new FrameTransform { RxDeg = double.NaN } });
        Assert.Contains(Check(plan).Violations, v => v.Rule == "patch-number");
    }

    [Fact]
    public void A_needle_meeting_the_skin_beyond_the_profiles_tilt_is_refused_and_the_head_position_that_faces_it_up_is_accepted()
    {
        // The skin at (0, 20, 0) leans 40° towards the front: in the nominal position the needle meets it 40° off.
        var leaning = new Vec3(0, Math.Sin(40 * Math.PI / 180), Math.Cos(40 * Math.PI / 180));
        var plan = new Plan { Name = "p", Units = "mm" };
        plan.Dots.Add(Dot("a", 0, 20, 0, leaning));
        var tilt = Assert.Single(Check(plan).Violations);
        Assert.Equal("needle-tilt", tilt.Rule);
        Assert.Contains("40.0°", tilt.Message, StringComparison.Ordinal);
        Assert.Contains("15°", tilt.Message, StringComparison.Ordinal);

        // Turned so that this skin faces up (about a centre 60 mm below it), it is placeable.
        var pose = PatchPlanner.TurnBringingUp(leaning, new Vec3(0, 20, -60));
        plan.Patches.Add(new PlanPatch { Number = 1, Instruction = PatchPlanner.Instruction(leaning), HeadPose = DesignPlans.ToMessage(pose) });
        plan.Dots[0].Patch = 1;
        Assert.True(Check(plan).IsValid, string.Join("; ", Check(plan).Violations.Select(v => v.Message)));
        Assert.Equal("Tilt the head back 40° (chin up)", PatchPlanner.Instruction(leaning));
    }

    [Fact]
    public void On_a_curved_plan_spacing_is_measured_on_the_skin_not_in_its_projection()
    {
        // Two dots 0.8 mm apart on skin that drops 60°: 0.4 mm apart in XY, well apart on the skin.
        var normal = new Vec3(0, Math.Sin(60 * Math.PI / 180), Math.Cos(60 * Math.PI / 180));
        var plan = new Plan { Name = "p", Units = "mm" };
        plan.Patches.Add(new PlanPatch { Number = 1, HeadPose = DesignPlans.ToMessage(PatchPlanner.TurnBringingUp(normal, new Vec3(0, 0, -60))) });
        plan.Dots.Add(Dot("a", 0, 0, 0, normal, 1));
        plan.Dots.Add(Dot("b", 0, 0.4, -0.8 * Math.Sin(60 * Math.PI / 180), normal, 1));
        Assert.DoesNotContain(Check(plan).Violations, v => v.Rule == "min-spacing");

        // Truly too close on the skin: refused, in those words.
        plan.Dots[1].YMm = 0.2;
        plan.Dots[1].ZMm = -0.4 * Math.Sin(60 * Math.PI / 180);
        var close = Assert.Single(Check(plan).Violations, v => v.Rule == "min-spacing");
        Assert.Contains("on the skin", close.Message, StringComparison.Ordinal);

        // A flat hand-written plan keeps the XY rule.
        var flat = new Plan { Name = "p", Units = "mm" };
        flat.Dots.Add(Dot("a", 0, 0, 0));
        flat.Dots.Add(Dot("b", 0, 0.4, 3));
        Assert.Contains(Check(flat).Violations, v => v.Rule == "min-spacing" && v.Message.Contains("XY, head frame", StringComparison.Ordinal));
    }
}
