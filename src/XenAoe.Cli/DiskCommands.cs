using System.CommandLine;
using System.Text.Json;
using XenAoe.Agents.Disk;
using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Storage;

namespace XenAoe.Cli;

/// <summary><c>xenaoe disk ...</c>: run a disk server and manage its volumes.</summary>
internal static class DiskCommands
{
    private static readonly Option<string> Pool = new("--pool", "-p")
    {
        Description = "Storage pool directory",
        DefaultValueFactory = _ => "/var/lib/xenaoe/pool",
    };

    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table" };

    public static Command Build()
    {
        var disk = new Command("disk", "Disk servers: export pool volumes as AoE targets on the storage NICs; list, drain and remove them through the controller");
        disk.Subcommands.Add(Serve());
        disk.Subcommands.Add(Volume());
        disk.Subcommands.Add(Counters());
        disk.Subcommands.Add(Drain());
        disk.Subcommands.Add(List());
        disk.Subcommands.Add(Remove());
        return disk;
    }

    private static Command List()
    {
        var command = new Command("list", "Disk servers in the controller's inventory: shelf, state, pool space, storage NICs (name/MTU)") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var disks = await client.DiskServersAsync(ct);
            if (parse.GetValue(Json))
                Console.WriteLine(JsonSerializer.Serialize(disks, XenAoe.Control.Api.ApiJsonContext.Default.IReadOnlyListDiskServerRecord));
            else
                PrintServers(disks);
        }));
        return command;
    }

    public static void PrintServers(IEnumerable<DiskServerRecord> disks) =>
        Table.Write(Console.Out, ["NAME", "SHELF", "STATE", "FREE", "SIZE", "NICS", "LABELS", "API"], disks.Select(d => (IReadOnlyList<string>)
            [d.Name, $"e{d.Shelf}", !d.Reachable ? "unreachable" : d.Draining ? "draining" : "up", Sizes.Format(d.FreeBytes), Sizes.Format(d.TotalBytes),
             Table.Nics(d.StorageNics), Table.Labels(d.Labels), d.ApiUrl]));

    private static Command Remove()
    {
        var name = new Argument<string>("name") { Description = "Disk server to take out of the inventory" };
        var command = new Command("remove", "Take a disk server out of the inventory (refused while VM disks have legs there: drain it first); stop its service first, or it registers again at its next start")
            { name, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await client.RemoveDiskServerAsync(parse.GetValue(name)!, ct);
            Console.WriteLine($"removed {parse.GetValue(name)}");
        }));
        return command;
    }

    private static Command Drain()
    {
        var name = new Argument<string>("name") { Description = "Disk server (as registered with the controller) to empty" };
        var command = new Command("drain", "Move every VM disk leg off a disk server (full copies while the VMs run) and keep new legs off it (a job)")
            { name, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await ControllerCommands.FollowAsync(client, await client.DrainDiskServerAsync(parse.GetValue(name)!, ct), json: false, ct);
        }));
        return command;
    }

    private static Command Serve()
    {
        var command = new Command("serve", "Run the disk server in the foreground until SIGINT/SIGTERM (settings: /etc/xenaoe/disk.conf, XENAOE_*, flags)");
        var flags = new DaemonFlags(command, DiskServerOptions.Schema);
        command.SetAction((parse, ct) => CommandErrors.Guard(() => DiskDaemon.RunAsync(DiskServerOptions.From(flags.Load(parse)), ct)));
        return command;
    }

    private static Command Volume()
    {
        var volume = new Command("volume", "Create, list, resize and delete volumes; set reservations, MAC masks and config strings");
        var name = new Argument<string>("name") { Description = "Volume name" };

        var address = new Option<string>("--address", "-a") { Description = "AoE address shelf.slot, e.g. e1.0", Required = true };
        var size = new Option<string>("--size", "-s") { Description = "Size, e.g. 64M, 10GiB (not with --device)" };
        var readOnly = new Option<bool>("--read-only") { Description = "Refuse writes" };
        var writeBack = new Option<bool>("--write-back") { Description = "Acknowledge writes before they are durable (only for battery-backed servers); FLUSH makes them durable" };
        var device = new Option<string>("--device") { Description = "Serve this block device or existing image file (adopted as is, never deleted) instead of a new file in the pool" };
        var create = new Command("create", "Create a volume") { name, Pool, address, size, readOnly, writeBack, device };
        create.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var deviceValue = parse.GetValue(device);
            var sizeText = parse.GetValue(size);
            if ((deviceValue is null) == (sizeText is null))
                throw new ArgumentException("give exactly one of --size or --device");
            var target = AoeAddress.Parse(parse.GetValue(address)!);
            using var volumes = Open(parse);
            var spec = await volumes.Value.CreateAsync(new VolumeSpec
            {
                Name = parse.GetValue(name)!,
                Shelf = target.Shelf,
                Slot = target.Slot,
                SizeBytes = sizeText is null ? 0 : Sizes.Parse(sizeText),
                ReadOnly = parse.GetValue(readOnly),
                WriteCache = parse.GetValue(writeBack) ? WriteCacheMode.WriteBack : WriteCacheMode.WriteThrough,
                Device = deviceValue,
            }, ct);
            Print(parse, [spec]);
        }));

        var list = new Command("list", "List volumes") { Pool, Json };
        list.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            Print(parse, await volumes.Value.ListAsync(ct));
        }));

        var newSize = new Option<string>("--size", "-s") { Description = "New size", Required = true };
        var shrink = new Option<bool>("--shrink") { Description = "Allow shrinking (discards data past the new end)" };
        var resize = new Command("resize", "Grow (or with --shrink, shrink) a file-backed volume") { name, Pool, newSize, shrink, Json };
        resize.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            Print(parse, [await volumes.Value.ResizeAsync(parse.GetValue(name)!, Sizes.Parse(parse.GetValue(newSize)!), parse.GetValue(shrink), ct)]);
        }));

        var force = new Option<bool>("--force") { Description = "Delete even if a host holds the reservation" };
        var delete = new Command("delete", "Delete a volume and its data") { name, Pool, force };
        delete.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            await volumes.Value.DeleteAsync(parse.GetValue(name)!, parse.GetValue(force), ct);
            Console.WriteLine($"deleted {parse.GetValue(name)}");
        }));

        var macs = new Option<string[]>("--mac") { Description = "MAC address (repeat; none clears the list)" };
        var reserve = new Command("reserve", "Force-set the AoE reservation to these MACs (none releases it)") { name, Pool, macs, Json };
        reserve.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            Print(parse, [await volumes.Value.SetReservationAsync(parse.GetValue(name)!, ParseMacs(parse.GetValue(macs)), ct)]);
        }));
        var mask = new Command("mask", "Set the MAC mask: only these MACs may talk to the target (none admits all)") { name, Pool, macs, Json };
        mask.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            Print(parse, [await volumes.Value.SetMacMaskAsync(parse.GetValue(name)!, ParseMacs(parse.GetValue(macs)), ct)]);
        }));
        var value = new Option<string>("--value") { Description = "Config string (at most 1024 bytes)", Required = true };
        var config = new Command("config", "Force-set the AoE config string") { name, Pool, value, Json };
        config.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            Print(parse, [await volumes.Value.SetConfigStringAsync(parse.GetValue(name)!, parse.GetValue(value)!, ct)]);
        }));

        foreach (var c in new[] { create, list, resize, delete, reserve, mask, config })
            volume.Subcommands.Add(c);
        return volume;
    }

    private static Command Counters()
    {
        var command = new Command("counters", "Show what the running disk server has seen (frames, errors, sectors)") { Pool, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var volumes = Open(parse);
            var counters = await volumes.Value.CountersAsync(ct);
            if (counters.Count == 0)
                throw new StorageException("no disk server is running on this pool");
            if (parse.GetValue(Json))
                Console.WriteLine(JsonSerializer.Serialize(counters.ToDictionary(), DiskApiJsonContext.Default.DictionaryStringInt64));
            else
                Table.Write(Console.Out, ["COUNTER", "VALUE"], counters.Select(c => (IReadOnlyList<string>)[c.Key, c.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)]));
        }));
        return command;
    }

    /// <summary>The running daemon's API when it answers on the pool's socket, else the pool itself (locked for this command).</summary>
    private static Owned<IDiskVolumes> Open(ParseResult parse)
    {
        var pool = parse.GetValue(Pool)!;
        var socket = DiskApiClient.SocketPath(pool);
        if (File.Exists(socket))
        {
            try
            {
                using var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, 0);
                probe.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
                var client = new DiskApiClient(socket);
                return new Owned<IDiskVolumes>(client, client);
            }
            catch (System.Net.Sockets.SocketException)
            {
                // A socket left by a daemon that died: fall through and open the pool directly.
            }
        }
        var storage = StoragePool.Open(pool);
        var admin = new DiskAdministrator(storage);
        return new Owned<IDiskVolumes>(admin, storage);
    }

    private static MacAddress[] ParseMacs(string[]? macs) => [.. (macs ?? []).Select(MacAddress.Parse)];

    private static void Print(ParseResult parse, IReadOnlyList<VolumeSpec> specs)
    {
        if (parse.GetValue(Json))
        {
            Console.WriteLine(JsonSerializer.Serialize(specs.ToList(), StorageJsonContext.Default.ListVolumeSpec));
            return;
        }
        Table.Write(Console.Out, ["NAME", "ADDRESS", "SIZE", "CACHE", "MODE", "RESERVED BY", "MASK", "CONFIG"], specs.Select(s => (IReadOnlyList<string>)
        [
            s.Name, s.Address, Sizes.Format(s.SizeBytes), s.WriteCache == WriteCacheMode.WriteBack ? "write-back" : "write-through",
            s.ReadOnly ? "ro" : "rw", s.Reservation.Count == 0 ? "-" : string.Join(",", s.Reservation),
            s.MacMask.Count == 0 ? "any" : string.Join(",", s.MacMask),
            s.ConfigString.Length == 0 ? "-" : System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(s.ConfigString)),
        ]));
    }

    private sealed class Owned<T>(T value, IDisposable owner) : IDisposable
    {
        public T Value { get; } = value;

        public void Dispose() => owner.Dispose();
    }
}
