from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('volumes', '0005_image_safety_and_fair_uploads'),
    ]

    operations = [
        migrations.AddField(
            model_name='upload',
            name='relayed',
            field=models.BooleanField(default=False, help_text="The chunks go to the job's worker through Redis "
                                      "(volumes/relay.py), not into a staging file on the web server."),
        ),
    ]
