using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// Starts watching the GPIO safety inputs with the host (and reads the pedal and the patient's
/// switch, and drives the attention output, from the start), and releases the pins when it stops.
/// </summary>
internal sealed class GpioInputsHostedService(GpioSafetyInputs inputs, IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // At start-up, before the gantry connects: an e-stop pressed now latches at once.
        inputs.Start();
        services.GetRequiredService<SafetySwitches>();
        services.GetService<AttentionOutput>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        inputs.Dispose();
        return Task.CompletedTask;
    }
}
