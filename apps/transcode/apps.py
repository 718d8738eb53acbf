from django.apps import AppConfig


class TranscodeConfig(AppConfig):
    name = "apps.transcode"
    label = "transcode"
    verbose_name = "Transcoding"

    def ready(self) -> None:
        # Imported here, not at the top: models and what imports them load after the app registry.
        from apps.content.signals import source_ready
        from apps.transcode.receivers import source_ready_received

        source_ready.connect(source_ready_received, dispatch_uid="transcode.source_ready")

        from apps.transcode.metrics import transcode_jobs_gauge
        from streamgate.metrics import state_source_register

        state_source_register("transcode_jobs", transcode_jobs_gauge)

        from apps.content.backups.services import backup_check_register
        from apps.transcode.backup_checks import master_keys_missing, master_keys_needed

        backup_check_register(
            "media_master_keys", collect=master_keys_needed, problems=master_keys_missing
        )
